"""The CLI package: the entry module registers every command; command modules import one way."""

from __future__ import annotations

import ast
from pathlib import Path

import dissensus.analytics.cli as entry

CLI = Path(entry.__file__).resolve().parent
COMMAND_MODULES = sorted(p.stem for p in CLI.glob("*.py")
                         if p.stem not in ("__init__", "__main__", "common"))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_command_modules_import_only_common() -> None:
    assert {"ingest", "demo", "fit", "audit", "reward", "serve"} <= set(COMMAND_MODULES)
    for name in [*COMMAND_MODULES, "common"]:
        cli_imports = {m for m in _imported(CLI / f"{name}.py")
                       if m.startswith("dissensus.analytics.cli")}
        assert cli_imports <= {"dissensus.analytics.cli.common"} | {
            f"dissensus.analytics.cli.common.{n}" for n in dir(entry.common)
        }, (name, cli_imports)


def test_every_command_is_registered() -> None:
    names = {c.name or c.callback.__name__ for c in entry.app.registered_commands}
    assert names == {"ingest", "status", "reindex", "quarantine", "simulate", "demo", "fit",
                     "reviewers", "reviewer", "train", "evaluate", "score", "serve"}
