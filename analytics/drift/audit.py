"""`dissensus audit-sample`: live turns to send back to reviewers, and why each was picked.

Strategies (over the turns a run scored):

* ``extrapolating``: the turns farthest from the training data (highest kNN percentile): where
  the reward is least supported, a review teaches the next run most;
* ``contested``: the turns the school heads disagree on most (largest school spread; runs
  without schools fall back to the extrapolation order and say so);
* ``stratified``: the same number from every window x category (the most extrapolated within
  each), so a quiet category is not crowded out by a loud one.

Output is the comparison input format, ready for a labelling tool: the live reply as
``response_a`` against another model version's reply to the same prompt where the traffic has
one (``response_b``), with ``batch`` = the audit batch name (``audit-<run>-<date>``; training
caps the weight of each such batch, ``audit_batch_cap``), ``audit_reason`` and
``traffic_id``. Turns without an alternative go to a second file of single turns for rating.
Reviewers add ``reviewer_id`` and ``choice``; the file then ingests as ordinary comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from dissensus.models.reward.config import AUDIT_BATCH_PREFIX
from dissensus.warehouse.errors import DissensusError

STRATEGIES = ("extrapolating", "contested", "stratified")


@dataclass
class AuditSample:
    """The picked turns as comparison rows and as single turns, and the batch name."""

    batch: str
    pairs: pl.DataFrame
    singles: pl.DataFrame
    notes: list[str]


def _turns(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    frame = con.sql("""
        SELECT s.traffic_id, strftime(t.created_at, '%G-W%V') AS week,
               coalesce(t.category, '(none)') AS category, t.model, t.prompt_id,
               t.response_text_id, s.knn_distance, s.knn_percentile, s.school_spread, s.contested,
               p.body AS prompt, r.body AS response
        FROM traffic_signals s JOIN traffic t USING (traffic_id)
        JOIN texts p ON p.text_id = t.prompt_id JOIN texts r ON r.text_id = t.response_text_id
        WHERE s.run_id = ? AND s.source = 'traffic'
    """, params=[run_id]).pl()
    if frame.height == 0:
        raise DissensusError(
            f"Run '{run_id}' has no scored traffic to sample from.", where="traffic_signals",
            expected="traffic scored by this run",
            fix=f"run `dissensus score {run_id} --traffic` first (after `dissensus traffic "
            "ingest FILE`)")
    return frame


def _reason(row: dict[str, object], strategy: str) -> str:
    where = ("beyond every held-out training distance" if row["knn_percentile"] >= 100  # type: ignore[operator]
             else f"at the {row['knn_percentile']:.1f}th percentile of held-out training distances")
    if strategy == "contested" and row["school_spread"] is not None:
        text = f"school heads spread {row['school_spread']:.2f} sd"
        return text + (" (the schools would disagree)" if row["contested"] else "") + \
            f"; distance {where}"
    if strategy == "stratified":
        return f"stratified: {row['week']} x {row['category']}; distance {where}"
    return f"far from the training data: distance {where}"


def audit_sample(con: duckdb.DuckDBPyConnection, run_id: str, n: int = 200,
                 strategy: str = "extrapolating", seed: int = 0) -> AuditSample:
    """Pick ``n`` scored turns of ``run_id`` by ``strategy`` (see the module docstring)."""
    if strategy not in STRATEGIES:
        raise DissensusError(f"Unknown strategy '{strategy}'.",
                             expected=", ".join(STRATEGIES), fix="pass --strategy extrapolating")
    if n < 1:
        raise DissensusError(f"--n {n} asks for no turns.", expected="a count of at least 1",
                             fix="pass --n 200")
    turns = _turns(con, run_id)
    notes: list[str] = []
    # by distance, not percentile: percentiles saturate at 100 beyond the held-out maximum
    order = [pl.col("knn_distance").rank("ordinal", descending=True)]
    if strategy == "contested":
        if turns["school_spread"].null_count() == turns.height:
            notes.append("this run has no school heads; picked by extrapolation instead")
        else:
            order = [pl.col("school_spread").rank("ordinal", descending=True)]
    ranked = turns.with_columns(order[0].alias("_rank")).sort("_rank")
    if strategy == "stratified":
        cells = ranked.select("week", "category").unique().height
        quota = max(n // max(cells, 1), 1)
        ranked = ranked.with_columns(
            pl.col("_rank").rank("ordinal").over("week", "category").alias("_within")
        ).sort("_within", "_rank")
        notes.append(f"{cells} window x category cells, up to {quota} turns each first")
    picked = ranked.head(n)
    picked = picked.with_columns(pl.Series(
        "audit_reason", [_reason(r, strategy) for r in picked.iter_rows(named=True)]))
    batch = f"{AUDIT_BATCH_PREFIX}{run_id}-{datetime.now(UTC):%Y%m%d}"
    alternatives = con.sql("""
        SELECT DISTINCT ON (t.prompt_id, t.response_text_id) t.prompt_id,
               t.response_text_id AS alt_text_id, t.model AS alt_model, r.body AS alt_response
        FROM traffic t JOIN texts r ON r.text_id = t.response_text_id
        ORDER BY t.prompt_id, t.response_text_id, t.created_at
    """).pl()
    joined = picked.join(alternatives, on="prompt_id", how="left").filter(
        pl.col("alt_text_id").is_null() | (pl.col("alt_text_id") != pl.col("response_text_id"))
    ).unique("traffic_id", keep="first", maintain_order=True)
    with_alt = joined.filter(pl.col("alt_text_id").is_not_null())
    pairs = with_alt.select(
        pl.col("prompt"), pl.col("response").alias("response_a"),
        pl.col("alt_response").alias("response_b"), "category", pl.lit(batch).alias("batch"),
        pl.col("model").alias("response_a_model"), pl.col("alt_model").alias("response_b_model"),
        "audit_reason", "traffic_id")
    singles = picked.filter(~pl.col("traffic_id").is_in(with_alt["traffic_id"].implode())).select(
        "prompt", "response", "category", pl.lit(batch).alias("batch"), "model", "audit_reason",
        "traffic_id")
    return AuditSample(batch, pairs, singles, notes)


def write_audit_sample(sample: AuditSample, out: Path) -> dict[str, Path]:
    """Write the comparison rows to ``out`` (JSONL or CSV by its suffix) and the single turns
    beside it (``<stem>.single<suffix>``); the paths written, by name."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame, path in (("pairs", sample.pairs, out),
                              ("singles", sample.singles,
                               out.with_name(out.stem + ".single" + out.suffix))):
        if frame.height == 0:
            continue
        if out.suffix.lower() == ".csv":
            frame.write_csv(path)
        else:
            frame.write_ndjson(path)
        paths[name] = path
    return paths
