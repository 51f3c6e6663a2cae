"""Cached, read-only queries behind the Deployment drift page (see :mod:`.data` for the keys).

Each function opens the warehouse read-only for one query and is cached under the warehouse's
(path, version) key, so new traffic scores show up on the next page load.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from dissensus.analytics.drift.audit import audit_sample as _audit_sample
from dissensus.analytics.drift.report import DriftSettings, drift_report
from dissensus.dashboards.data import SPINNER
from dissensus.dashboards.source import Key
from dissensus.dashboards.source import open_read as _open


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def traffic_runs(k: Key) -> pl.DataFrame:
    """Runs that scored the traffic, newest first (empty when none has)."""
    with _open(k) as con:
        if not con.execute("SELECT count(*) FROM information_schema.tables "
                           "WHERE table_name = 'traffic_runs'").fetchall()[0][0]:
            return pl.DataFrame({"run_id": []}, schema={"run_id": pl.String})
        return con.sql("SELECT run_id, scored_at, n_turns, heads FROM traffic_runs "
                       "ORDER BY scored_at DESC").pl()


@st.cache_data(show_spinner="Testing every window and category for drift…", max_entries=16)
def report(k: Key, run_id: str, window: str, baseline: str | None) -> dict[str, object]:
    """The drift report as ``cells`` (a frame), ``alarms`` and ``notes``."""
    with _open(k) as con:
        result = drift_report(con, run_id, DriftSettings(window=window, baseline=baseline))
    return {"cells": result.cells, "alarms": result.alarms, "notes": result.notes}


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def rewards_by_window(k: Key, run_id: str, head: str, window: str,
                      per_window: int = 400) -> pl.DataFrame:
    """Up to ``per_window`` scores of ``head`` per window and category (a seeded sample)."""
    fmt = "%G-W%V" if window == "week" else "%Y-%m-%d"
    with _open(k) as con:
        return con.sql(f"""
            SELECT "window", category, score FROM (
                SELECT strftime(t.created_at, '{fmt}') AS "window",
                       coalesce(t.category, '(none)') AS category, s.score,
                       row_number() OVER (PARTITION BY "window" ORDER BY hash(s.traffic_id))
                           AS rn
                FROM traffic_scores s JOIN traffic t USING (traffic_id)
                WHERE s.run_id = ? AND s.head = ?
            ) WHERE rn <= ?
        """, params=[run_id, head, per_window]).pl()


@st.cache_data(show_spinner="Picking turns for review…", max_entries=16)
def audit(k: Key, run_id: str, n: int, strategy: str) -> pl.DataFrame:
    """The audit sample as one frame: live reply, alternative (if any) and the reason."""
    with _open(k) as con:
        sample = _audit_sample(con, run_id, n, strategy)
    pairs = sample.pairs.rename({"response_a": "response", "response_b": "alternative"})
    return pl.concat([pairs, sample.singles.rename({"model": "response_a_model"})],
                     how="diagonal").select(
        "traffic_id", "category", "audit_reason", "prompt", "response", "alternative",
        "response_a_model", "batch")
