"""Fixtures shared by the test modules.

- ``vote``: one comparison row (a dict, as a labelling tool exports it) for a small warehouse.
- ``warehouse``: a factory that ingests rows into a fresh warehouse through the real ingest path
  (rows written as JSONL, then :func:`dissensus.warehouse.ingest.ingest_file`).
- ``lapse_flagged_ids``: the reviewers a fitted annotator model flags for lapses.
- ``fake_fit``: a writer of FAKE annotator-model output (fits, reviewer_estimates,
  pair_estimates, comparison_weights), for tests of what reads a fit without fitting one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file

CHOICES = {1: "a", 0: "tie", -1: "b"}
"""Outcome codes as choices: +1 prefers response A, -1 response B, 0 a tie."""


def make_vote(
    reviewer: str | None, item: int, choice: str | int, *, day: int | None = None, **fields
) -> dict:
    """A comparison of item ``item``: prompt ``prompt {item}``, replies ``A{item}`` and
    ``B{item}``, reply A shown first.

    ``choice``: ``"a"``, ``"b"``, ``"tie"`` or an outcome code of :data:`CHOICES`. ``created_at``
    is day ``1 + item % 28`` of January 2026 at 10:00; with ``day``, that day at hour
    ``item % 24`` (a reviewer's items of one day then come in item order). ``fields`` add
    columns or replace these. ``reviewer`` None leaves ``reviewer_id`` out.
    """
    created_at = (
        f"2026-01-{1 + item % 28:02d}T10:00:00"
        if day is None
        else f"2026-01-{day:02d}T{item % 24:02d}:00:00"
    )
    row = {"choice": CHOICES[choice] if isinstance(choice, int) else choice,
           "prompt": f"prompt {item}", "response_a": f"A{item}", "response_b": f"B{item}",
           "shown_first": "a", "created_at": created_at, **fields}
    if reviewer is not None:
        row["reviewer_id"] = reviewer
    return row


@pytest.fixture(scope="session")
def vote() -> Callable[..., dict]:
    """:func:`make_vote`."""
    return make_vote


@pytest.fixture(scope="session")
def lapse_flagged_ids() -> Callable[..., set[str]]:
    """``lapse_flagged_ids(model)``: the ids of the reviewers a fitted ``AnnotatorModel`` flags
    for lapses (a position-bias flag alone is not one)."""

    def flagged(model) -> set[str]:  # type: ignore[no-untyped-def]
        est = model.reviewer_estimates_
        return set(est.filter(pl.col("flag_kinds").str.contains("lapses"))["reviewer_id"])

    return flagged


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Callable[..., duckdb.DuckDBPyConnection]]:
    """``warehouse(rows, name="w")``: ``rows`` written to ``tmp_path/<name>.jsonl`` and ingested
    into a fresh ``tmp_path/<name>.duckdb``; returns the open connection (closed at teardown)."""
    opened: list[duckdb.DuckDBPyConnection] = []

    def build(rows: list[dict], name: str = "w") -> duckdb.DuckDBPyConnection:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        con = connect(tmp_path / f"{name}.duckdb")
        opened.append(con)
        ingest_file(con, path)
        return con

    yield build
    for con in opened:
        con.close()


Rows = pl.DataFrame | str | None
"""Rows of an output table: a frame, or a SQL query over the warehouse (columns named as the
table's, without ``fit_id``)."""


def write_fake_fit(
    con: duckdb.DuckDBPyConnection,
    fit_id: str,
    *,
    created_at: datetime = datetime(2026, 1, 1),
    method: str = "fake",
    n_schools: int = 2,
    n_comparisons: int = 0,
    seconds: float = 0.0,
    diagnostics: str | None = None,
    config: str | None = None,
    reviewers: Rows = None,
    pairs: Rows = None,
    weights: Rows = None,
) -> str:
    """FAKE annotator-model output, not a fit: one ``fits`` row and, where given, the rows of
    ``reviewer_estimates`` (``reviewers``), ``pair_estimates`` (``pairs``) and
    ``comparison_weights`` (``weights``), all under ``fit_id``. Every insert names its columns,
    so it does not depend on the tables' column order; columns left out are NULL. Returns
    ``fit_id``."""
    con.execute(
        "INSERT INTO fits (fit_id, created_at, method, n_schools, n_comparisons, seconds, "
        "diagnostics, config) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [fit_id, created_at, method, n_schools, n_comparisons, seconds, diagnostics, config],
    )
    for table, rows in (("reviewer_estimates", reviewers), ("pair_estimates", pairs),
                        ("comparison_weights", weights)):
        if rows is None:
            continue
        view = f"fake_{table}"
        query = rows if isinstance(rows, str) else f"SELECT * FROM {view}"
        if not isinstance(rows, str):
            con.register(view, rows.to_arrow())
        try:
            names = ", ".join(f'"{c}"' for c in con.sql(query).columns if c != "fit_id")
            con.execute(
                f"INSERT INTO {table} (fit_id, {names}) SELECT ?, {names} FROM ({query})",
                [fit_id],
            )
        finally:
            if not isinstance(rows, str):
                con.unregister(view)
    return fit_id


@pytest.fixture(scope="session")
def fake_fit() -> Callable[..., str]:
    """:func:`write_fake_fit` (session-scoped: usable from fixtures of any scope)."""
    return write_fake_fit


def undo_migrations(con: duckdb.DuckDBPyConnection, since: int) -> None:
    """Make a warehouse look like one written before schema version ``since``: what every
    migration from ``since`` on created is dropped, newest first (a later one may build on an
    earlier one), and their versions are forgotten."""
    import re

    from dissensus.warehouse.schema import MIGRATIONS

    for migration in reversed(MIGRATIONS):
        if migration.version < since:
            continue
        for statement in migration.statements:
            table = re.search(r"CREATE TABLE (\w+)", statement)
            column = re.search(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", statement)
            if table:
                con.execute(f"DROP TABLE {table.group(1)}")
            elif column:
                con.execute(f"ALTER TABLE {column.group(1)} DROP COLUMN {column.group(2)}")
    con.execute("DELETE FROM schema_version WHERE version >= ?", [since])


@pytest.fixture(scope="session")
def schema_before() -> Callable[[duckdb.DuckDBPyConnection, int], None]:
    """:func:`undo_migrations`."""
    return undo_migrations
