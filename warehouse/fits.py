"""Which annotator-model fit is "the latest": one rule for the CLI, the models and the dashboards
(and which reward run is the newest, and which last scored the traffic, for the commands that
take a run).

The latest fit is the newest row of ``fits`` (by ``created_at``, then ``fit_id``). Readers that
need a particular output of the fit ask for the newest fit that has rows in that table, so a fit
stored without them (an older schema, a fake in a test) is passed over rather than read empty.
"""

from __future__ import annotations

import json
from typing import Literal

import duckdb

FitOutput = Literal["comparison_weights", "reviewer_estimates", "pair_estimates"]


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables").fetchall()}


def latest_fit(con: duckdb.DuckDBPyConnection, *, having: FitOutput | None = None) -> str | None:
    """The id of the newest fit, or ``None`` when there is none.

    ``having``: only fits with rows in this output table count (``comparison_weights`` for the
    reward models and the trade-offs, ``reviewer_estimates`` for the reviewer audit).
    A file without the output tables (no fit ever stored) has no latest fit.
    """
    needed = {"fits"} | ({having} if having else set())
    if not needed <= _tables(con):
        return None
    where = f"WHERE fit_id IN (SELECT DISTINCT fit_id FROM {having}) " if having else ""
    rows = con.execute(
        f"SELECT fit_id FROM fits {where}ORDER BY created_at DESC, fit_id DESC LIMIT 1"
    ).fetchall()
    return str(rows[0][0]) if rows else None


def fit_record(con: duckdb.DuckDBPyConnection, fit_id: str | None) -> dict | None:
    """The ``fits`` row of ``fit_id`` as a dict, its ``diagnostics`` JSON read ({} if unreadable);
    ``None`` for no fit."""
    if fit_id is None:
        return None
    rows = con.sql("SELECT * FROM fits WHERE fit_id = ?", params=[fit_id]).pl()
    if rows.height == 0:
        return None
    fit = rows.row(0, named=True)
    try:
        fit["diagnostics"] = json.loads(fit["diagnostics"] or "{}")
    except (TypeError, ValueError):
        fit["diagnostics"] = {}
    return fit


def fit_schools_unseen(con: duckdb.DuckDBPyConnection, fit_id: str | None) -> bool:
    """Whether fit ``fit_id`` chose more than one school yet called no pair pluralism (its
    diagnostics' ``schools_unseen``, see :func:`dissensus.models.annotator.notes.schools_unseen`):
    then no pair shows its split. False for no fit, and for a fit made before it was recorded."""
    fit = fit_record(con, fit_id)
    return fit is not None and fit["diagnostics"].get("schools_unseen") is True


def _newest(con: duckdb.DuckDBPyConnection, table: str, at: str) -> str | None:
    """``run_id`` of ``table``'s newest row by ``at`` (then ``run_id``), or ``None``."""
    if table not in _tables(con):
        return None
    rows = con.execute(f"SELECT run_id FROM {table} ORDER BY {at} DESC, run_id DESC "
                       "LIMIT 1").fetchall()
    return str(rows[0][0]) if rows else None


def latest_traffic_run(con: duckdb.DuckDBPyConnection) -> str | None:
    """The reward run that scored the live traffic most recently (``traffic_runs.scored_at``,
    then ``run_id``), or ``None`` when none has: what ``dissensus drift`` and ``audit-sample``
    read when no run is named."""
    return _newest(con, "traffic_runs", "scored_at")


def latest_run(con: duckdb.DuckDBPyConnection) -> str | None:
    """The newest reward run (``reward_runs.created_at``, then ``run_id``), or ``None``: what
    ``dissensus evaluate`` and ``score`` read when no run is named."""
    return _newest(con, "reward_runs", "created_at")
