"""The source layout: one import name, no import circles, every package installed.

* The modules under warehouse/, models/, analytics/ and dashboards/ import each other without
  circles: the graph of every ``import`` / ``from ... import`` statement in the source (at module
  level, inside functions and under ``TYPE_CHECKING`` alike) is acyclic. A deferred or
  type-checking-only import hides a circle from the interpreter, not from a reader.
* The folders install under ``dissensus`` only: ``import models`` fails outside the repository.
* pyproject.toml lists every folder that holds an ``__init__.py`` as a package.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_FOLDERS = ("warehouse", "models", "analytics", "dashboards")
NAMESPACE = "dissensus"

KNOWN_ANALYTICS_CYCLES: list[frozenset[str]] = []
"""Import circles tolerated: none (kept as the one place to name one, with its reason)."""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


def module_name(path: Path) -> str:
    """``models/annotator/grid_em.py`` -> ``dissensus.models.annotator.grid_em`` (a package's
    ``__init__.py`` is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([NAMESPACE, *parts])


def source_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for top in TOP_FOLDERS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[module_name(path)] = path
    return files


def _imported(node: ast.AST, module: str, is_package: bool,
              known: dict[str, Path]) -> Iterator[str]:
    """The first-party modules one import statement names."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[: len(package) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    for alias in node.names:
        # ``from pkg import name`` imports the submodule pkg.name when there is one, else a
        # name defined by pkg's __init__
        sub = f"{target}.{alias.name}"
        yield sub if sub in known else target


def import_graph() -> tuple[dict[str, Path], list[Edge]]:
    files = source_files()
    edges: list[Edge] = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported(node, name, is_package, files):
                if target in files and target != name:
                    edges.append(Edge(name, target, node.lineno))
    return files, edges


def strongly_connected(nodes: list[str], edges: list[Edge]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with more than one module."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        succ[e.source].append(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(succ[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def describe_cycle(component: list[str], edges: list[Edge], files: dict[str, Path]) -> str:
    """One circle through the component's first module, with the import lines that make it."""
    inside = set(component)
    succ: dict[str, list[Edge]] = {}
    for e in edges:
        if e.source in inside and e.target in inside:
            succ.setdefault(e.source, []).append(e)
    start = component[0]
    # breadth-first back to the start gives a shortest circle
    came: dict[str, Edge | None] = {start: None}
    queue = [start]
    last: Edge | None = None
    while queue and last is None:
        node = queue.pop(0)
        for e in succ.get(node, []):
            if e.target == start:
                last = e
                break
            if e.target not in came:
                came[e.target] = e
                queue.append(e.target)
    path: list[Edge] = []
    step = last
    while step is not None:
        path.append(step)
        step = came[step.source]
    lines = [f"  {files[e.source].relative_to(ROOT)}:{e.line} imports {e.target}"
             for e in reversed(path)]
    return f"circle among {', '.join(component)}:\n" + "\n".join(lines)


def test_no_import_circles() -> None:
    files, edges = import_graph()
    components = strongly_connected(sorted(files), edges)
    allowed = set(KNOWN_ANALYTICS_CYCLES)
    unexpected = [c for c in components if frozenset(c) not in allowed]
    assert not unexpected, "import circles:\n" + "\n".join(
        describe_cycle(c, edges, files) for c in unexpected)


def test_known_cycles_stay_in_analytics() -> None:
    for cycle in KNOWN_ANALYTICS_CYCLES:
        assert all(m.startswith(f"{NAMESPACE}.analytics.") for m in cycle), cycle


def test_graph_sees_every_kind_of_import() -> None:
    """The graph builder itself: deferred, TYPE_CHECKING, relative and package imports."""
    files = {n: Path(n) for n in ("dissensus.p", "dissensus.p.a", "dissensus.p.b",
                                  "dissensus.p.c", "dissensus.q")}
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .b import X\n"
        "def f():\n    from . import c\n    import dissensus.q\n"
        "from .. import p\n"
    )
    tree = ast.parse(source)
    found = {t for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
             for t in _imported(node, "dissensus.p.a", False, files)}
    assert found >= {"dissensus.p.b", "dissensus.p.c", "dissensus.q"}
    # ``from .. import p`` from dissensus.p.a names dissensus.p (its __init__)
    assert "dissensus.p" in found
    edges = [Edge("dissensus.p", "dissensus.p.a", 1), Edge("dissensus.p.a", "dissensus.p", 1),
             Edge("dissensus.p.b", "dissensus.q", 1)]
    assert strongly_connected(sorted(files), edges) == [["dissensus.p", "dissensus.p.a"]]


def _env_without_repo() -> dict[str, str]:
    """This environment, less PYTHONPATH entries that put the repository on the path."""
    env = dict(os.environ)
    kept = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
            if p and Path(p).resolve() != ROOT]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        env.pop("PYTHONPATH", None)
    return env


def _run_import(module: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", f"import {module}"], cwd=cwd,
                          env=_env_without_repo(), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("folder", TOP_FOLDERS)
def test_folders_do_not_install_at_top_level(folder: str, tmp_path: Path) -> None:
    done = _run_import(folder, tmp_path)
    assert done.returncode != 0
    assert f"ModuleNotFoundError: No module named '{folder}'" in done.stderr, done.stderr


def test_installed_under_one_name(tmp_path: Path) -> None:
    done = _run_import("dissensus.models.annotator", tmp_path)
    assert done.returncode == 0, done.stderr


def test_pyproject_lists_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir = config["package-dir"]
    assert package_dir == {f"{NAMESPACE}.{top}": top for top in TOP_FOLDERS}
    on_disk = {module_name(init) for top in TOP_FOLDERS
               for init in (ROOT / top).rglob("__init__.py") if "__pycache__" not in init.parts}
    listed = set(config["packages"])
    assert on_disk - listed == set(), "packages missing from pyproject.toml"
    assert listed - on_disk == set(), "pyproject.toml lists packages with no __init__.py"
