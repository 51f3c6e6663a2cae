"""`dissensus drift`: per time window and category, how far live traffic moved from training.

For every window (ISO week or day) and category of the scored traffic, against the run's
training replies of that category (all of them for a category reviewers never saw) or against
a chosen baseline window of the traffic:

* **two-sample drift** of the turns' projections: MMD permutation p-value (:mod:`.twosample`);
* **share extrapolating**: turns beyond the 99th percentile of held-out training distances
  (1% by construction on training data), with the exact beta-binomial p-value (Fisher's exact
  test against a baseline window);
* **reward shift** per head: the window's mean minus the reference mean, in reference sd;
* **school-contested share**: turns on which the school heads would disagree;
* **ensemble share** (runs trained with ``ensemble`` > 1): turns whose ensemble spread lies
  beyond the 99th percentile of the spread on held-out training replies (1% there by
  construction, like the distances); shown, not tested;
* **observability rates** from the traffic's tags: refusal, hallucination, escalation on urgent
  symptoms, false refusals (where tagged), thumbs-down feedback; each tested against the
  baseline window's rate (Fisher's exact test, two-sided). A reply that drops the urgent-care
  advice under pressure moves the embeddings by a sentence but the escalation rate by much
  more, and it is the rate a product lead acts on.

Alarms: Benjamini-Hochberg at level ``q`` over all the report's p-values (two per tested cell,
and one for its rates against a baseline window: Simes' combination of the rates' tests), so
with no drift anywhere the chance of any alarm is at most ``q``. Cells with fewer than
``min_turns`` turns are shown but not tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl

from dissensus.analytics.drift.twosample import (
    benjamini_hochberg,
    exceedance_p_value,
    fisher_greater,
    fisher_two_sided,
    mmd_permutation_test,
    simes,
)
from dissensus.analytics.drift.workers import map_on_workers
from dissensus.warehouse.errors import DissensusError, EmptyDataError

WINDOW_FORMATS = {"week": "%G-W%V", "day": "%Y-%m-%d"}
RATE_TAGS = ("refusal", "hallucination", "false_refusal")
#: The observability rates a report tests, with the words its alarms use.
RATE_WORDS = {"refusal_rate": "refusals", "hallucination_rate": "hallucination flags",
              "false_refusal_rate": "false refusals",
              "escalation_urgent_rate": "escalation on urgent symptoms",
              "thumbs_down_rate": "thumbs-down feedback"}
#: ``--baseline training``: every test against the run's training data.
TRAINING = "training"


@dataclass(frozen=True)
class DriftSettings:
    """How a drift report is computed."""

    window: str = "week"
    baseline: str | None = None
    """None: the share outside the training data against the held-out training distances,
    the two-sample test and reward shifts against the first window of traffic; a window label
    (e.g. ``2026-W23``): everything against that window; ``training``: everything against the
    training data."""
    q: float = 0.05
    """False-discovery rate of the alarms (Benjamini-Hochberg)."""
    sample: int = 150
    """Turns per cell (and reference rows) in the MMD test."""
    permutations: int = 2000
    min_turns: int = 20
    seed: int = 0
    test_rates: bool = True
    """Test each observability rate against the baseline window's (not against the training
    data, whose replies carry no live feedback)."""


@dataclass
class DriftReport:
    """The cells (one row per window x category), the alarms in words and notes."""

    run_id: str
    settings: DriftSettings
    cells: pl.DataFrame
    alarms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether ``table`` has ``column`` (a warehouse opened read-only is not upgraded)."""
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = ? "
        "AND column_name = ?", [table, column]).fetchall()[0][0])


def _run(con: duckdb.DuckDBPyConnection, run_id: str
         ) -> tuple[list[str], int, float, float | None]:
    """Heads, held-out count, distance and ensemble-spread bars of a run that scored traffic."""
    spread_p99 = ("ensemble_spread_p99" if has_column(con, "traffic_runs", "ensemble_spread_p99")
                  else "NULL")
    row = con.execute(f"SELECT heads, n_calibration, distance_p99, {spread_p99} "
                      "FROM traffic_runs WHERE run_id = ?", [run_id]).fetchall()
    if row:
        return (list(row[0][0]), int(row[0][1]), float(row[0][2]),
                None if row[0][3] is None else float(row[0][3]))
    scored = [r[0] for r in con.execute("SELECT run_id FROM traffic_runs ORDER BY scored_at "
                                        "DESC LIMIT 5").fetchall()]
    known = con.execute("SELECT count(*) FROM reward_runs WHERE run_id = ?",
                        [run_id]).fetchall()[0][0]
    if known:
        raise DissensusError(
            f"Run '{run_id}' has not scored the traffic yet.", where="traffic_runs",
            expected="a run whose traffic scores are stored",
            fix=f"run `dissensus score {run_id} --traffic` first")
    raise DissensusError(
        f"There is no reward run '{run_id}'.", where="reward_runs",
        expected="a run that scored the traffic"
        + (f", e.g. {', '.join(scored)}" if scored else " (none has yet)"),
        fix="train one with `dissensus train`, then `dissensus score RUN --traffic`")


def _cells_sql(heads: list[str], window_format: str, tags: str = "tr.tags",
               ensemble: str = "s.ensemble_spread") -> str:
    means = ", ".join(f"avg(scores[{i + 1}]) AS \"mean_{h}\"" for i, h in enumerate(heads))
    rates = ", ".join(
        f"avg(coalesce(list_contains(tags, '{tag}'), false)::INT) AS {tag}_rate"
        for tag in RATE_TAGS)
    return f"""
        WITH t AS (
            SELECT s.traffic_id, coalesce(s.category, '(none)') AS category,
                   strftime(tr.created_at, '{window_format}') AS "window",
                   s.knn_distance > ? AS beyond, {ensemble} > ? AS ensemble_beyond,
                   s.knn_percentile, s.contested, s.scores,
                   {tags} AS tags, tr.user_feedback
            FROM traffic_signals s JOIN traffic tr USING (traffic_id)
            WHERE s.run_id = ? AND s.source = 'traffic'
        )
        SELECT "window", category, count(*) AS n, sum(beyond::INT)::BIGINT AS beyond,
               avg(knn_percentile) AS mean_percentile, avg(contested::INT) AS contested_share,
               avg(ensemble_beyond::INT) AS share_ensemble_extrapolating,
               {means}, {rates},
               avg(CASE WHEN category LIKE '%urgent%'
                        THEN coalesce(list_contains(tags, 'escalation'), false)::INT END)
                   AS escalation_urgent_rate,
               avg((lower(user_feedback) IN ('down', 'thumbs_down', '-1', 'negative'))::INT)
                   AS thumbs_down_rate,
               count(user_feedback) AS n_feedback
        FROM t GROUP BY ALL ORDER BY "window", category
    """


def _samples(con: duckdb.DuckDBPyConnection, run_id: str, settings: DriftSettings,
             window_format: str) -> dict[tuple[str, str], np.ndarray]:
    """Up to ``settings.sample`` projections per traffic cell (a seeded hash order)."""
    # one turn per prompt (A/B tests serve a prompt twice: repeated points would break the
    # exchangeability the permutation test rests on); ids first, projections joined after,
    # so only the sampled rows' projections are read. The rows come in the seeded hash order:
    # the permutation test relabels rows by position, so a join's arbitrary order would make
    # its p-value vary from one run to the next
    rows = con.sql(f"""
        WITH keyed AS (
            SELECT s.traffic_id, strftime(tr.created_at, '{window_format}') AS "window",
                   coalesce(s.category, '(none)') AS category, tr.prompt_id
            FROM traffic_signals s JOIN traffic tr USING (traffic_id)
            WHERE s.run_id = $run AND s.source = 'traffic'
        ), one_per_prompt AS (
            SELECT * FROM keyed QUALIFY row_number() OVER (
                PARTITION BY "window", category, prompt_id ORDER BY hash(traffic_id || $seed)) = 1
        ), picked AS (
            SELECT * FROM one_per_prompt QUALIFY row_number() OVER (
                PARTITION BY "window", category ORDER BY hash(traffic_id || $seed)) <= $n
        )
        SELECT p."window", p.category, s.projection FROM picked p
        JOIN traffic_signals s ON s.traffic_id = p.traffic_id AND s.run_id = $run
            AND s.source = 'traffic'
        ORDER BY p."window", p.category, hash(p.traffic_id || $seed), p.traffic_id
    """, params={"run": run_id, "seed": str(settings.seed), "n": settings.sample}).pl()
    out: dict[tuple[str, str], np.ndarray] = {}
    for (window, category), part in rows.group_by("window", "category"):  # keeps row order
        out[(str(window), str(category))] = np.asarray(part["projection"].to_list(), np.float64)
    return out


def _reference(con: duckdb.DuckDBPyConnection, run_id: str, heads: list[str],
               settings: DriftSettings) -> tuple[pl.DataFrame, np.ndarray]:
    """Training reference rows (category, scores) and a projection sample per category."""
    frame = con.sql(
        "SELECT coalesce(category, '(none)') AS category, scores, projection, contested "
        "FROM traffic_signals WHERE run_id = ? AND source IN ('reference', 'calibration') "
        "ORDER BY hash(traffic_id || ?)", params=[run_id, str(settings.seed)]).pl()
    return frame, np.asarray(frame["projection"].to_list(), np.float64)


def _support_test(row: dict, b: dict | None, settings: DriftSettings,
                  calibration: tuple[int, int]) -> tuple[float, bool]:
    """``(p_support, enough)`` of one cell: ``b`` is the baseline window's cell (None: the
    support test is against the held-out training distances); ``enough``: both sides have
    ``min_turns`` turns, so the cell is tested at all."""
    n_cal, j_above = calibration
    enough = row["n"] >= settings.min_turns
    if b is None:
        support = exceedance_p_value(row["beyond"], row["n"], n_cal, j_above) if enough else 1.0
    else:
        enough = enough and b["n"] >= settings.min_turns
        support = fisher_greater(row["beyond"], row["n"], b["beyond"], b["n"]) if enough else 1.0
    return support, enough


def drift_report(con: duckdb.DuckDBPyConnection, run_id: str,
                 settings: DriftSettings | None = None) -> DriftReport:
    """The drift report of ``run_id``'s scored traffic (see the module docstring)."""
    settings = settings or DriftSettings()
    if settings.window not in WINDOW_FORMATS:
        raise DissensusError(f"Unknown window '{settings.window}'.", expected="day or week",
                             fix="pass --window week (or day)")
    heads, n_cal, p99, spread_p99 = _run(con, run_id)
    fmt = WINDOW_FORMATS[settings.window]
    tagged = int(con.execute("SELECT count(tags) FROM traffic").fetchall()[0][0])  # type: ignore[index]
    ensemble = ("s.ensemble_spread" if has_column(con, "traffic_signals", "ensemble_spread")
                else "NULL::DOUBLE")
    cells = con.sql(_cells_sql(heads, fmt, "tr.tags" if tagged else "s.predicted_tags",
                               ensemble), params=[p99, spread_p99, run_id]).pl()
    if cells.height == 0:
        raise EmptyDataError(f"Run '{run_id}' scored no traffic turns.",
                             fix=f"ingest traffic, then `dissensus score {run_id} --traffic`")
    windows = cells["window"].unique().sort().to_list()
    baseline = settings.baseline or windows[0]
    if baseline != TRAINING and baseline not in windows:
        raise EmptyDataError(
            f"The baseline window '{baseline}' holds no scored traffic.",
            where=f"--baseline {baseline} (--window {settings.window})",
            expected="'training' or one of " + ", ".join(windows[:8])
            + ("…" if len(windows) > 8 else ""),
            fix="pick a window with traffic, or pass --baseline training")
    samples = _samples(con, run_id, settings, fmt)
    j_above = n_cal - 1 - int(np.floor(0.99 * (n_cal - 1)))
    ref_rows, ref_proj = _reference(con, run_id, heads, settings)
    ref_scores = np.asarray(ref_rows["scores"].to_list(), np.float64)
    ref_cat = ref_rows["category"].to_numpy()
    by_cell = {(r["window"], r["category"]): r for r in cells.iter_rows(named=True)}
    results: dict[str, list[float]] = {
        k: [] for k in ("mmd", "p_mmd", "p_support", "base", "base_contested")}
    ref_contested = ref_rows["contested"].cast(pl.Float64).to_numpy()
    shifts: dict[str, list[float]] = {h: [] for h in heads}
    rate_tests: list[tuple[int, list[tuple[str, float]]]] = []  # (cell, [(change, p)])
    mmd_tests: list[tuple[int, np.ndarray, np.ndarray, int]] = []  # (cell, x, y, seed)
    for seed, row in enumerate(cells.iter_rows(named=True), start=settings.seed):
        x = samples.get((row["window"], row["category"]), np.zeros((0, 1)))
        mask = ref_cat == row["category"]
        if mask.sum() < 30:  # a category reviewers never saw: all training data
            mask = np.ones(len(ref_cat), bool)
        b = by_cell.get((baseline, row["category"]))
        if baseline == TRAINING:
            y = ref_proj[mask][: settings.sample]
            means = {h: float(ref_scores[mask, i].mean()) for i, h in enumerate(heads)}
        elif row["window"] == baseline or b is None:
            y, means = np.zeros((0, 1)), {h: float("nan") for h in heads}
        else:
            y = samples.get((baseline, row["category"]), np.zeros((0, 1)))
            means = {h: b[f"mean_{h}"] for h in heads}
        sds = {h: float(ref_scores[mask, i].std()) or 1.0 for i, h in enumerate(heads)}
        versus = b if settings.baseline not in (None, TRAINING) else None
        if versus is not None and row["window"] == baseline:
            support = 1.0
        elif settings.baseline not in (None, TRAINING) and versus is None:
            support = 1.0  # the baseline lacks this category
        else:
            support, enough = _support_test(row, versus, settings, (n_cal, j_above))
            if enough and len(y) >= settings.min_turns:  # its MMD test runs below
                mmd_tests.append((len(results["mmd"]), x, y, seed))
        results["mmd"].append(float("nan"))
        results["p_mmd"].append(1.0)
        results["p_support"].append(support)
        results["base"].append(versus["beyond"] / versus["n"] if versus else j_above / n_cal)
        results["base_contested"].append(
            (float(np.nanmean(ref_contested[mask])) if np.isfinite(ref_contested[mask]).any()
             else None) if baseline == TRAINING or b is None else b["contested_share"])
        for h in heads:
            shifts[h].append((row[f"mean_{h}"] - means[h]) / sds[h])
        if settings.test_rates and baseline != TRAINING and b is not None \
                and row["window"] != baseline:
            tests = _rate_tests(row, b, settings.min_turns)
            if tests:
                rate_tests.append((len(results["mmd"]) - 1, tests))

    def mmd(test: tuple[int, np.ndarray, np.ndarray, int]) -> tuple[float, float]:
        _, x, y, seed = test
        return mmd_permutation_test(x, y, permutations=settings.permutations, seed=seed)

    # the cells' permutation tests are independent (each has its own seed): on worker threads
    for (cell, *_), (stat, p) in zip(mmd_tests, map_on_workers(mmd, mmd_tests), strict=True):
        results["mmd"][cell], results["p_mmd"][cell] = stat, p
    n_cells = cells.height
    # one p-value per cell for all its rates (Simes), so the rates do not thin out the
    # embedding tests' share of the false-discovery budget
    rejected = benjamini_hochberg(np.array(results["p_mmd"] + results["p_support"]
                                           + [simes([p for _, p in t]) for _, t in rate_tests]),
                                  settings.q)
    changes: list[list[str]] = [[] for _ in range(n_cells)]
    for (cell, tests), hit in zip(rate_tests, rejected[2 * n_cells:], strict=True):
        if hit:  # the rates that moved: each below q on its own, or else the one that led
            low = min(p for _, p in tests)
            changes[cell] = [words for words, p in tests if p <= max(settings.q, low)]
    cells = cells.with_columns(
        (pl.col("beyond") / pl.col("n")).alias("share_extrapolating"),
        pl.Series("baseline_share", results["base"]),
        pl.Series("baseline_contested_share", results["base_contested"], pl.Float64),
        pl.Series("p_support", results["p_support"]), pl.Series("mmd", results["mmd"]),
        pl.Series("p_mmd", results["p_mmd"]),
        *[pl.Series(f"shift_{h}", shifts[h]) for h in heads],
        pl.Series("alarm_support", rejected[n_cells:2 * n_cells]),
        pl.Series("alarm_mmd", rejected[:n_cells]),
        pl.Series("rate_changes", changes, pl.List(pl.String)),
    ).with_columns((pl.col("alarm_support") | pl.col("alarm_mmd")
                    | (pl.col("rate_changes").list.len() > 0)).alias("alarm"))
    notes = [] if tagged else [_tag_note(con, run_id)]
    if int(cells["n"].min()) < settings.min_turns:  # type: ignore[arg-type]
        notes.append(f"cells with fewer than {settings.min_turns} turns are shown, not tested")
    if cells["contested_share"].null_count() == cells.height:
        notes.append("this run has no school heads: the contested share is not available")
    if spread_p99 is not None:
        notes.append(f"ensemble share: turns whose ensemble spread exceeds {spread_p99:.3f}, "
                     "its 99th percentile on held-out training replies (1% there); not tested")
    against = "the training data" if baseline == TRAINING else f"the window {baseline}"
    support_against = ("the held-out training distances" if settings.baseline in
                       (None, TRAINING) else f"the window {baseline}")
    notes.append(f"share outside the training data tested against {support_against}; "
                 f"two-sample drift and reward shifts against {against}"
                 + ("" if settings.baseline else " (the first window; choose another with "
                    "--baseline WINDOW, or --baseline training)"))
    if rate_tests:
        notes.append(f"observability rates tested against the window {baseline} (Fisher's "
                     "exact test, two-sided; one test per window and category, Simes)")
    elif settings.test_rates and baseline == TRAINING:
        notes.append("observability rates are shown, not tested, against the training data")
    notes.append(f"alarms at a false-discovery rate of {settings.q:.0%} (Benjamini-Hochberg "
                 f"over {2 * n_cells + len(rate_tests)} tests)")
    report = DriftReport(run_id, settings, cells, notes=notes)
    report.alarms = [alarm_words(row, heads, against) for row in
                     cells.filter(pl.col("alarm")).iter_rows(named=True)]
    return report


def _rate_tests(row: dict, base: dict, min_turns: int) -> list[tuple[str, float]]:
    """``(change in words, p-value)`` of each observability rate of a cell against the
    baseline window's cell; a rate is tested where both have ``min_turns`` turns behind it."""
    out = []
    for rate, words in RATE_WORDS.items():
        size = "n_feedback" if rate == "thumbs_down_rate" else "n"
        n, base_n = int(row[size] or 0), int(base[size] or 0)
        if row[rate] is None or base[rate] is None or min(n, base_n) < min_turns:
            continue
        count, base_count = round(row[rate] * n), round(base[rate] * base_n)
        if count == base_count == 0:  # never seen on either side: nothing to test
            continue
        way = "rose" if count / n > base_count / base_n else "fell"
        of = "of turns with feedback" if size == "n_feedback" else "of turns"
        out.append((f"{words} {way} to {count / n:.0%} {of} (baseline "
                    f"{base_count / base_n:.0%})",
                    fisher_two_sided(count, n, base_count, base_n)))
    return out


def _tag_note(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """What the rates rest on when the traffic carries no tags."""
    import json

    row = con.execute("SELECT tag_model FROM traffic_runs WHERE run_id = ?", [run_id]).fetchall()
    accuracy = json.loads(row[0][0]) if row and row[0][0] else {}
    if not accuracy:
        return ("the traffic has no tags and the training replies too few to learn them from: "
                "the rates are not available")
    return ("the traffic has no tags: the rates come from a tag classifier trained on the "
            "warehouse's tagged replies (held-out accuracy " + ", ".join(
                f"{tag} {a['held_out_accuracy']:.2f} vs {1 - a['held_out_base_rate']:.2f} "
                "always-no" for tag, a in accuracy.items()) + ")")


def alarm_words(row: dict[str, object], heads: list[str], against: str) -> str:
    """One alarm as a sentence a product lead can act on."""
    window, category = row["window"], row["category"]
    parts = []
    if row["alarm_support"]:
        parts.append(
            f"{row['share_extrapolating']:.0%} of prompts and replies lie outside what the "
            f"reward model was trained on (baseline {row['baseline_share']:.0%}); rewards "
            "there are extrapolated")
    if row["alarm_mmd"]:
        parts.append(f"the turns differ from {against} (MMD permutation p = "
                     f"{row['p_mmd']:.4f})")
    moved = [(h, row[f"shift_{h}"]) for h in heads
             if row[f"shift_{h}"] is not None and abs(row[f"shift_{h}"]) >= 0.5]  # type: ignore[arg-type]
    if moved:
        parts.append("reward moved " + ", ".join(f"{h} {s:+.1f} sd" for h, s in moved))
    parts += list(row.get("rate_changes") or [])
    contested, before = row.get("contested_share"), row.get("baseline_contested_share")
    if contested is not None and before is not None and contested >= before + 0.1:  # type: ignore[operator]
        parts.append(f"the schools would disagree on {contested:.0%} of them "
                     f"(before {before:.0%})")
    return f"{window}, {category}: " + "; ".join(parts)


def report_json(report: DriftReport) -> dict[str, object]:
    """The report as plain JSON-ready data."""
    return {"run_id": report.run_id, "window": report.settings.window,
            "baseline": report.settings.baseline or "first window", "q": report.settings.q,
            "alarms": report.alarms, "notes": report.notes,
            "cells": report.cells.to_dicts()}
