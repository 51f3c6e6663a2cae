"""Cached queries behind the dashboards; the warehouse is opened read-only and briefly.

Every query opens the DuckDB file read-only, runs, and closes it again, so that `dissensus fit`,
`train` or `ingest` can take the write lock between page loads. Results are cached with
``st.cache_data`` under a :data:`Key` = (path, version); the version changes whenever the file (or
its WAL) changes, so a new fit shows up on the next page load without a restart.

While `dissensus api` holds the file, the queries read the server's snapshot instead
(:mod:`.source`: which file a key reads and how it is opened).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
from dataclasses import dataclass

import polars as pl
import streamlit as st

from dissensus.analytics import tradeoffs as tr
from dissensus.dashboards.source import Key
from dissensus.dashboards.source import open_read as _open
from dissensus.warehouse import queries
from dissensus.warehouse.errors import DissensusError, EmptyDataError
from dissensus.warehouse.fits import fit_record, fit_schools_unseen, latest_fit

SPINNER = "Querying the warehouse…"
PRELOAD_MODULES: tuple[str, ...] = ("dissensus.analytics.audit", "dissensus.analytics.consistency")
_preload_lock = threading.Lock()
_preload: threading.Thread | None = None


def start_preload() -> threading.Thread:
    """Import the analytics the heavier pages need in a background thread, once per server, so
    the first visit to those pages does not wait for the imports."""
    global _preload
    with _preload_lock:
        if _preload is None:
            _preload = threading.Thread(
                target=lambda: [importlib.import_module(m) for m in PRELOAD_MODULES],
                name="dissensus-preload", daemon=True)
            _preload.start()
        return _preload


@dataclass(frozen=True)
class Health:
    """What the warehouse holds; ``problem`` says in words why it cannot be read, if so."""

    path: str
    problem: str | None
    counts: queries.WarehouseCounts | None
    fit: dict | None
    n_runs: int


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def health(k: Key) -> Health:
    try:
        with _open(k) as con:
            tables = {r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables").fetchall()}
            if "comparisons" not in tables:
                return Health(k[0], "The file holds no dissensus warehouse yet.", None, None, 0)
            c = queries.counts(con)
            fit = fit_record(con, latest_fit(con))
            n_runs = con.execute("SELECT count(*) FROM reward_runs").fetchall()[0][0] \
                if "reward_runs" in tables else 0
            return Health(k[0], None, c, fit, int(n_runs))
    except DissensusError as error:
        return Health(k[0], error.render(), None, None, 0)


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def batches(k: Key) -> pl.DataFrame:
    with _open(k) as con:
        return queries.batches(con)


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def quarantine_summary(k: Key) -> pl.DataFrame:
    with _open(k) as con:
        return queries.quarantine_summary(con)


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def quarantine_rows(k: Key, batch_id: int | None = None, limit: int = 1000) -> pl.DataFrame:
    with _open(k) as con:
        return queries.quarantine_rows(con, batch_id, limit)


@st.cache_data(show_spinner="Running the reviewer audit…", max_entries=8, persist=None)
def reviewer_audit(k: Key) -> pl.DataFrame:
    from dissensus.analytics.audit import reviewer_audit as audit

    with _open(k) as con:
        try:
            return audit(con)
        except EmptyDataError:
            return pl.DataFrame()


@st.cache_data(show_spinner=SPINNER, max_entries=64)
def drift_series(k: Key, reviewer_id: str) -> pl.DataFrame:
    from dissensus.analytics.consistency import drift_series as series

    with _open(k) as con:
        return series(con, reviewer_id)


@st.cache_data(show_spinner=SPINNER, max_entries=64)
def school_disagreements(k: Key, reviewer_id: str, limit: int = 20) -> pl.DataFrame:
    from dissensus.analytics.audit import school_disagreements as disagreements

    with _open(k) as con:
        return disagreements(con, reviewer_id, limit)


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def pair_estimates(k: Key, fit_id: str) -> pl.DataFrame:
    with _open(k) as con:
        return con.sql("""
            SELECT e.pair_id, coalesce(p.category, '(none)') AS category, e.verdict, e.n_votes,
                   e.p_first, e.noise_share, e.pluralism_share, e.ambiguity_share, e.prompt
            FROM pair_estimates e LEFT JOIN prompts p USING (prompt_id)
            WHERE e.fit_id = ? ORDER BY e.pluralism_share DESC, e.n_votes DESC
        """, params=[fit_id]).pl()


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def split_pairs(k: Key, limit: int = 500) -> pl.DataFrame:
    """Without a fit: the pairs whose raw votes are most split (no causes told apart)."""
    with _open(k) as con:
        return con.sql(f"""
            SELECT pair_id, coalesce(any_value(category), '(none)') AS category,
                   count(*) AS n_votes, avg((outcome + 1) / 2.0) AS share_response_1,
                   1 - 2 * abs(avg((outcome + 1) / 2.0) - 0.5) AS split
            FROM comparisons GROUP BY pair_id HAVING count(*) >= 3
            ORDER BY split DESC, n_votes DESC, pair_id LIMIT {int(limit)}
        """).pl()


@st.cache_data(show_spinner=SPINNER, max_entries=64)
def pair_cards(k: Key, pair_id: str) -> dict:
    """The prompt and both replies of a pair with tags, model and length."""
    with _open(k) as con:
        rows = con.sql("""
            SELECT p.pair_id, tp.body AS prompt, pr.category,
                   t1.body AS text_1, r1.tags AS tags_1, r1.model AS model_1, t1.n_chars AS chars_1,
                   t2.body AS text_2, r2.tags AS tags_2, r2.model AS model_2, t2.n_chars AS chars_2
            FROM pairs p LEFT JOIN texts tp ON tp.text_id = p.prompt_id
            LEFT JOIN prompts pr ON pr.prompt_id = p.prompt_id
            JOIN responses r1 ON r1.response_id = p.response_1_id
            JOIN texts t1 ON t1.text_id = r1.text_id
            JOIN responses r2 ON r2.response_id = p.response_2_id
            JOIN texts t2 ON t2.text_id = r2.text_id WHERE p.pair_id = ?
        """, params=[pair_id]).pl()
    return rows.row(0, named=True) if rows.height else {}


@st.cache_data(show_spinner=SPINNER, max_entries=64)
def pair_votes(k: Key, pair_id: str, fit_id: str | None) -> pl.DataFrame:
    """Votes on one pair by school (soft membership): school, answer, votes (weighted)."""
    answer = ("CASE c.outcome WHEN 1 THEN 'response 1' WHEN -1 THEN 'response 2' "
              "ELSE 'tie' END")
    with _open(k) as con:
        if fit_id is None:
            return con.sql(f"""
                SELECT 'all reviewers' AS school, {answer} AS answer, count(*)::DOUBLE AS votes
                FROM comparisons c WHERE c.pair_id = ? GROUP BY ALL ORDER BY answer
            """, params=[pair_id]).pl()
        return con.sql(f"""
            WITH v AS (SELECT c.outcome, cw.school_weights FROM comparisons c
                       JOIN comparison_weights cw ON cw.comparison_id = c.comparison_id
                       AND cw.fit_id = ? WHERE c.pair_id = ?),
            u AS (SELECT outcome, unnest(school_weights) AS sw,
                         unnest(range(len(school_weights))) AS k FROM v)
            SELECT 'school ' || k AS school, {answer.replace('c.', '')} AS answer,
                   sum(sw) AS votes FROM u GROUP BY ALL ORDER BY school, answer
        """, params=[fit_id, pair_id]).pl()


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def reward_runs(k: Key) -> pl.DataFrame:
    """Reward runs, newest first, with their headline metrics as columns."""
    with _open(k) as con:
        runs = con.sql("SELECT run_id, created_at, kind, fit_id, encoder, device, metrics "
                       "FROM reward_runs ORDER BY created_at DESC").pl()
    def metric(m: str | None, name: str) -> float | None:
        value = json.loads(m or "{}").get(name)
        return float(value) if isinstance(value, int | float) else None
    cols = ("accuracy_consensus", "worst_school_accuracy", "ece", "contested_auc",
            "length_baseline_accuracy", "reward_length_spearman")
    return runs.with_columns(*[
        pl.Series(c, [metric(m, c) for m in runs["metrics"].to_list()], dtype=pl.Float64)
        for c in cols])


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def reward_vs_length(k: Key, run_id: str) -> pl.DataFrame:
    with _open(k) as con:
        return con.sql("""
            SELECT s.head, s.response_id, s.score, t.n_chars, coalesce(p.category, '(none)')
                   AS category, coalesce(r.tags, []::VARCHAR[]) AS tags
            FROM reward_scores s JOIN responses r USING (response_id)
            JOIN texts t ON t.text_id = r.text_id LEFT JOIN prompts p ON p.prompt_id = r.prompt_id
            WHERE s.run_id = ? AND s.head <> 'sd'
        """, params=[run_id]).pl()


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def fits_with_unseen_schools(k: Key, fit_ids: tuple[str, ...]) -> list[str]:
    """Those of ``fit_ids`` that chose schools yet call no pair pluralism (``schools_unseen``
    in their diagnostics): school heads trained on them learnt a split no pair shows."""
    with _open(k) as con:
        return [f for f in fit_ids if fit_schools_unseen(con, f)]


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def predicted_disagreements(k: Key, run_id: str, limit: int = 50) -> pl.DataFrame:
    """The pairs a run's school heads most expect the schools to split on."""
    from dissensus.analytics.jobs.reward import predicted_disagreements as predict

    with _open(k) as con:
        return predict(con, run_id, limit)


@st.cache_resource(show_spinner="Weighing the votes by school…", max_entries=4)
def book(k: Key, fit_id: str | None) -> tr.TradeoffBook:
    """The trade-off inputs of a fit, coded once (kept, not copied: every caller only reads)."""
    with _open(k) as con:
        return tr.load_book(con, fit_id)


@st.cache_resource(show_spinner="Reading the reward scores…", max_entries=8)
def book_with_run(k: Key, fit_id: str | None, run_id: str | None) -> tr.TradeoffBook:
    """:func:`book` plus a reward run's heads as sources."""
    base = book(k, fit_id)
    if not run_id:
        return base
    with _open(k) as con:
        return base.with_scores(tr.reward_run_scores(con, run_id))


@st.cache_data(show_spinner="Computing the trade-offs…", max_entries=16)
def category_tradeoffs(k: Key, fit_id: str | None, run_id: str | None) -> pl.DataFrame:
    return book_with_run(k, fit_id, run_id).category_tradeoffs()


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def tag_preferences(k: Key, fit_id: str | None) -> pl.DataFrame:
    return book(k, fit_id).tag_preferences()


@st.cache_data(show_spinner=SPINNER, max_entries=16)
def school_prevalence(k: Key, fit_id: str | None) -> dict[str, float]:
    return book(k, fit_id).school_prevalence()


@st.cache_data(show_spinner="Re-weighting the schools…", max_entries=64)
def what_if(k: Key, fit_id: str | None, run_id: str | None,
            weights: tuple[tuple[str, float], ...]) -> tr.WhatIf:
    return book_with_run(k, fit_id, run_id).what_if(dict(weights))


def pseudonym(reviewer_id: str, salt: str | None = None) -> str:
    """A stable display name for a reviewer id (salt from ``$DISSENSUS_UI_SALT``)."""
    s = salt if salt is not None else os.environ.get("DISSENSUS_UI_SALT", "dissensus")
    return "reviewer-" + hashlib.sha256(f"{s}:{reviewer_id}".encode()).hexdigest()[:8]


def _metrics(runs: pl.DataFrame) -> list[tuple[str, str, dict]]:
    return [(r, kind, json.loads(m or "{}"))
            for r, kind, m in runs.select("run_id", "kind", "metrics").iter_rows()]


def reward_accuracy(runs: pl.DataFrame) -> pl.DataFrame:
    """run, target (consensus / school k), accuracy from the runs' stored metrics."""
    rows = []
    for run, kind, m in _metrics(runs):
        label = f"{kind} · {run[-6:]}"
        if m.get("accuracy_consensus") is not None:
            rows.append((label, "consensus", float(m["accuracy_consensus"])))
        for school, acc in (m.get("accuracy_per_school") or {}).items():
            if acc is not None:
                rows.append((label, school.replace("_", " "), float(acc)))
    return pl.DataFrame(rows, schema={"run": pl.String, "target": pl.String,
                                      "accuracy": pl.Float64}, orient="row")


def reward_calibration(runs: pl.DataFrame) -> pl.DataFrame:
    """run, bin low/high, n, mean_predicted, observed from the runs' reliability tables."""
    rows = [{"run": f"{kind} · {run[-6:]}", **b} for run, kind, m in _metrics(runs)
            for b in m.get("reliability") or []]
    return pl.DataFrame(rows) if rows else pl.DataFrame(
        schema={"run": pl.String, "mean_predicted": pl.Float64, "observed": pl.Float64,
                "n": pl.Int64})


def disagreement_calibration(runs: pl.DataFrame) -> pl.DataFrame:
    """run, bin, n, mean_predicted, observed: the predicted P(schools disagree) of runs with
    school heads against how often held-out votes from different schools disagreed."""
    rows = [{"run": f"{kind} · {run[-6:]}", **b} for run, kind, m in _metrics(runs)
            for b in ((m.get("disagreement") or {}).get("calibration") or {})
            .get("reliability") or []]
    return pl.DataFrame(rows) if rows else pl.DataFrame(
        schema={"run": pl.String, "mean_predicted": pl.Float64, "observed": pl.Float64,
                "n": pl.Int64})


def mixture_summary(runs: pl.DataFrame) -> pl.DataFrame:
    """run, start, schools, shares, EM rounds: what each mixture run learned."""
    rows = [{"run": f"{kind} · {run[-6:]}", "started from": m["mixture"]["initialised_from"],
             "schools": m["mixture"]["n_schools"],
             "shares": ", ".join(f"{x:.0%}" for x in m["mixture"]["shares"]),
             "EM rounds": len(m["mixture"]["rounds"])}
            for run, kind, m in _metrics(runs) if m.get("mixture")]
    return pl.DataFrame(rows)


def reward_metric_table(runs: pl.DataFrame) -> pl.DataFrame:
    """One row per headline metric, one column per run: for side-by-side comparison."""
    names = ("accuracy_consensus", "worst_school_accuracy", "ece", "contested_auc",
             "disagreement_ece", "length_baseline_accuracy", "reward_length_spearman",
             "n_labelled_pairs")
    table: dict[str, list] = {"metric": list(names)}
    for run, kind, m in _metrics(runs):
        m = {**m, "disagreement_ece": ((m.get("disagreement") or {}).get("calibration")
                                       or {}).get("ece")}
        table[f"{kind} · {run[-6:]}"] = [
            float(m[n]) if isinstance(m.get(n), int | float) else None for n in names]
    return pl.DataFrame(table)


def reward_by_tag(scores: pl.DataFrame) -> pl.DataFrame:
    """Mean reward per tag and head with a normal 95% interval (untagged replies as 'none')."""
    tagged = scores.with_columns(
        pl.when(pl.col("tags").list.len() == 0).then(pl.lit(["none"]))
        .otherwise(pl.col("tags")).alias("tag")).explode("tag")
    out = tagged.group_by("head", "tag").agg(
        pl.col("score").mean().alias("mean"), pl.col("score").std().alias("sd"),
        pl.len().alias("n"))
    half = 1.96 * pl.col("sd").fill_null(0) / pl.col("n").sqrt()
    return out.with_columns(low=pl.col("mean") - half, high=pl.col("mean") + half).sort(
        "tag", "head")
