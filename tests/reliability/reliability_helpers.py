"""Shared by the reliability tests: the real CLI in-process, and small input files."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from dissensus.analytics.cli import app


def cli(*args: str) -> Result:
    """Run ``dissensus ARGS`` in-process; fail the test on a traceback (any exception but the
    command's own exit)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback from dissensus {' '.join(args)}") from result.exception
    assert "Traceback" not in result.output
    return result


def good_row(i: int, **fields: object) -> dict:
    """A valid comparison ``i`` (three reviewers take turns)."""
    return {"reviewer_id": f"r{i % 3}", "choice": "ab"[i % 2], "prompt": f"prompt {i}",
            "response_a": f"A{i}", "response_b": f"B{i}", **fields}


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path
