"""Scoring live traffic with a reward run: `dissensus score RUN --traffic` and `--input FILE`.

For every turn: each head's standardised reward (as ``reward_scores``), the extrapolation
distance to the run's training replies and its percentile among held-out training distances
(:mod:`dissensus.analytics.drift.reference`), the school heads' spread and whether the schools
would disagree (:func:`~dissensus.analytics.jobs.turn_scores.school_signals`), for runs
trained with ``ensemble`` > 1 the spread of their deep ensemble (``ensemble_spread``; its 99th
percentile on the held-out training replies is the bar, as for the distances), and a PCA
projection for the drift tests. A sample of
training replies (one per prompt) is stored beside them with the same signals, as the
reference the drift report compares windows with.

Embeddings come from the run's encoder through the embedding cache, so a text is embedded once;
the encoder runs on CUDA when present. Scores are computed in batches of ``batch_turns``, each
by :func:`~dissensus.analytics.jobs.turn_scores.score_embedded` (blocks of rows on worker
threads).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import torch

from dissensus.analytics.drift.reference import Reference, build_reference
from dissensus.analytics.drift.tags import TagModel, fit_tag_model
from dissensus.analytics.jobs.reward import embedding_cache, load_run
from dissensus.analytics.jobs.turn_scores import (  # the scoring of embedded rows; re-exported
    CONTESTED_GAP,
    score_embedded,
    turn_features,
)
from dissensus.models.reward.checkpoint import Checkpoint
from dissensus.models.reward.data import load_preferences
from dissensus.models.reward.encoder import Progress, TextEncoder
from dissensus.models.reward.errors import RewardModelError
from dissensus.models.reward.pipeline import model_inputs

Log = Callable[[str], None]


@dataclass
class Scorer:
    """A loaded run, ready to score (prompt, reply) texts: checkpoint, encoder, reference."""

    run_id: str
    checkpoint: Checkpoint
    encoder: TextEncoder
    cache: Path | None
    reference: Reference
    reference_rows: pl.DataFrame
    """One training reply per prompt: response_id, category, source, distance, scores...;
    ``_item`` indexes :attr:`reference_features`."""
    reference_features: np.ndarray | None = None
    tags: TagModel | None = None
    """Tag classifiers fitted on the training replies (for traffic without tags)."""
    ensemble_p99: float | None = None
    """99th percentile of the ensemble spread on held-out training replies (None: no members)."""

    def embed(self, text_ids: list[str], bodies: list[str],
              progress: Progress | None = None) -> np.ndarray:
        embeddings, _ = model_inputs(self.checkpoint.config, self.encoder, self.cache,
                                     text_ids, bodies, progress)
        return embeddings

    def score(self, prompts: np.ndarray, replies: np.ndarray) -> dict[str, np.ndarray]:
        """Scores per head, signals and projection for embedded (prompt, reply) rows."""
        return score_embedded(self.checkpoint, self.reference, prompts, replies)


def load_scorer(
    con: duckdb.DuckDBPyConnection, run_id: str, *, cache_folder: Path | None = None,
    progress: Progress | None = None, log: Log = print,
) -> Scorer:
    """Load run ``run_id`` and build its reference from the replies of its training split."""
    _, checkpoint, encoder = load_run(con, run_id)
    if torch.cuda.is_available():
        checkpoint.model.to("cuda")
        if checkpoint.ensemble is not None:
            checkpoint.ensemble.to("cuda")
        model = getattr(encoder, "model", None)
        if model is not None:
            model.to("cuda")
    config = checkpoint.config
    cache = embedding_cache(con, cache_folder)
    data = load_preferences(con, None, split_by=config.split_by, seed=config.seed,
                            validation_share=config.validation_share,
                            test_share=config.test_share)
    train = data.comparisons.filter(pl.col("split") == "train")
    replies = pl.concat([
        train.select("prompt_id", pl.col("prompt_idx"), pl.col("response_1_id").alias("rid"),
                     pl.col("r1_idx").alias("ridx")),
        train.select("prompt_id", pl.col("prompt_idx"), pl.col("response_2_id").alias("rid"),
                     pl.col("r2_idx").alias("ridx")),
    ]).unique("rid", maintain_order=True)
    categories = con.sql("SELECT prompt_id, category FROM prompts").pl()
    replies = replies.join(categories, on="prompt_id", how="left", maintain_order="left")
    texts = data.texts
    embeddings = Scorer(run_id, checkpoint, encoder, cache, None, pl.DataFrame()).embed(  # type: ignore[arg-type]
        texts["text_id"].to_list(), texts["body"].to_list(), progress)
    prompt_emb = embeddings[replies["prompt_idx"].to_numpy()]
    reply_emb = embeddings[replies["ridx"].to_numpy()]
    features = turn_features(checkpoint, prompt_emb, reply_emb)
    reference, held, distances = build_reference(
        features, replies["prompt_id"].to_list(), seed=config.seed)
    scored = score_embedded(checkpoint, reference, prompt_emb, reply_emb)
    rows = replies.select("rid", "prompt_id", "category").with_row_index("_item").with_columns(
        pl.Series("source", np.where(held, "calibration", "reference")),
        pl.Series("distance", distances),
        pl.Series("percentile", reference.percentile(distances)),
        *_signal_columns(checkpoint, scored),
    )
    ensemble_p99 = (float(np.quantile(scored["ensemble_spread"][held], 0.99))
                    if "ensemble_spread" in scored and held.any() else None)
    # one reply per prompt, like live traffic (training prompts carry several judged replies)
    rows = rows.sample(fraction=1.0, shuffle=True, seed=config.seed).unique(
        "prompt_id", keep="first", maintain_order=True)
    log(f"reference: {int(reference.index.n_samples_fit_):,} training replies indexed, "
        f"{int(held.sum()):,} held out; 99th percentile of held-out distances "
        f"{reference.p99:.3f}; the kNN space keeps {reference.variance_kept:.0%} of the variance"
        + ("" if ensemble_p99 is None else f"; 99th percentile of the held-out ensemble spread "
           f"{ensemble_p99:.3f}"))
    tagged = replies.join(con.sql("SELECT response_id AS rid, tags FROM responses").pl(),
                          on="rid", how="left", maintain_order="left")
    tag_model = fit_tag_model(features, tagged["tags"].to_list(), held, seed=config.seed)
    return Scorer(run_id, checkpoint, encoder, cache, reference, rows, features, tag_model,
                  ensemble_p99)


def _signal_columns(checkpoint: Checkpoint, scored: dict[str, np.ndarray]) -> list[pl.Series]:
    heads = list(standardised_head_names(checkpoint))
    n = len(scored["distance"])
    return [
        pl.Series("spread", scored.get("spread", np.full(n, np.nan)), pl.Float64),
        pl.Series("contested", scored["contested"] if "contested" in scored else [None] * n,
                  pl.Boolean),
        pl.Series("scores", np.stack([scored[h] for h in heads], axis=1).tolist(),
                  pl.List(pl.Float64)),
        pl.Series("projection", scored["projection"].tolist(), pl.List(pl.Float32)),
        # null for runs without ensemble members
        pl.Series("ensemble_spread", scored.get("ensemble_spread", [None] * n), pl.Float64),
    ]


def _refit_projection(con: duckdb.DuckDBPyConnection, scorer: Scorer,
                      progress: Progress | None, sample: int = 20_000) -> None:
    """Refit the reference's projection on training replies plus a sample of the traffic (one
    turn per prompt) and re-project the stored reference rows."""
    turns = con.sql(
        "SELECT t.prompt_id, p.body AS prompt, t.response_text_id, r.body AS response "
        "FROM traffic t JOIN texts p ON p.text_id = t.prompt_id "
        "JOIN texts r ON r.text_id = t.response_text_id "
        "QUALIFY row_number() OVER (PARTITION BY t.prompt_id ORDER BY hash(t.traffic_id)) = 1 "
        "ORDER BY hash(t.traffic_id) LIMIT ?", params=[sample]).pl()
    ids = turns["prompt_id"].to_list() + turns["response_text_id"].to_list()
    embedded = scorer.embed(ids, turns["prompt"].to_list() + turns["response"].to_list(),
                            progress)
    live = turn_features(scorer.checkpoint, embedded[: turns.height], embedded[turns.height:])
    training = scorer.reference_features
    scorer.reference.refit_projection(np.concatenate([training, live]))
    rows = scorer.reference_rows
    scorer.reference_rows = rows.with_columns(pl.Series(
        "projection", scorer.reference.project(training[rows["_item"].to_numpy()]).tolist(),
        pl.List(pl.Float32)))


def standardised_head_names(checkpoint: Checkpoint) -> list[str]:
    """The score names a run writes (``mean``/``sd`` for distributional runs, else its heads)."""
    return ["mean", "sd"] if checkpoint.config.kind == "distributional" else checkpoint.heads


def score_traffic(
    con: duckdb.DuckDBPyConnection, run_id: str, *, cache_folder: Path | None = None,
    progress: Progress | None = None, turns_done: Callable[[int], None] | None = None,
    batch_turns: int = 50_000, log: Log = print,
) -> int:
    """Score every traffic turn with every head of ``run_id`` and store scores and signals
    (replacing the run's earlier traffic scores in one transaction); the number of turns."""
    n_turns = int(con.execute("SELECT count(*) FROM traffic").fetchall()[0][0])  # type: ignore[index]
    if n_turns == 0:
        raise RewardModelError(
            "The warehouse holds no traffic to score.", where="traffic",
            expected="logged assistant turns (prompt, response, created_at)",
            fix="run `dissensus traffic ingest FILE` first")
    scorer = load_scorer(con, run_id, cache_folder=cache_folder, progress=progress, log=log)
    _refit_projection(con, scorer, progress)
    heads = standardised_head_names(scorer.checkpoint)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("traffic_scores", "traffic_signals", "traffic_runs"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        ref = scorer.reference_rows.select(
            pl.lit(run_id).alias("run_id"), pl.col("rid").alias("traffic_id"), "source",
            "category", pl.col("distance").alias("knn_distance"),
            pl.col("percentile").alias("knn_percentile"), pl.col("spread").alias("school_spread"),
            "contested", "scores", "projection", "ensemble_spread")
        _insert(con, "traffic_signals", ref)
        for offset in range(0, n_turns, batch_turns):
            turns = con.sql(
                "SELECT t.traffic_id, t.category, t.prompt_id, p.body AS prompt, "
                "t.response_text_id, r.body AS response FROM traffic t "
                "JOIN texts p ON p.text_id = t.prompt_id "
                "JOIN texts r ON r.text_id = t.response_text_id "
                "ORDER BY t.traffic_id LIMIT ? OFFSET ?", params=[batch_turns, offset]).pl()
            scored = _score_frame(scorer, turns, progress)
            heads_frame = pl.concat([
                pl.DataFrame({"run_id": run_id, "traffic_id": turns["traffic_id"],
                              "head": head, "score": scored[head].astype(float)})
                for head in heads])
            signals = turns.select(pl.lit(run_id).alias("run_id"), "traffic_id").with_columns(
                pl.lit("traffic").alias("source"), turns["category"],
                pl.Series("knn_distance", scored["distance"]),
                pl.Series("knn_percentile", scored["percentile"]),
                *[s.alias(n) for s, n in zip(_signal_columns(scorer.checkpoint, scored),
                                             ("school_spread", "contested", "scores",
                                              "projection", "ensemble_spread"), strict=True)],
                pl.Series("predicted_tags", scored.get("predicted_tags", [None] * turns.height),
                          pl.List(pl.String)))
            _insert(con, "traffic_scores", heads_frame)
            _insert(con, "traffic_signals", signals)
            if turns_done:
                turns_done(turns.height)
        rule = None
        if "contested" in scorer.reference_rows.columns and \
                scorer.reference_rows["contested"].null_count() < scorer.reference_rows.height:
            rule = (f"school rewards of opposite sign, at least {CONTESTED_GAP:g} sd apart")
        con.execute(
            "INSERT INTO traffic_runs (run_id, scored_at, heads, n_turns, n_reference, "
            "n_calibration, k, distance_p99, school_rule, tag_model, ensemble_spread_p99) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, datetime.now(UTC).replace(tzinfo=None), heads, n_turns,
             int(scorer.reference.index.n_samples_fit_), len(scorer.reference.calibration),
             scorer.reference.k, scorer.reference.p99, rule,
             json.dumps(scorer.tags.accuracy if scorer.tags else {}), scorer.ensemble_p99])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    log(f"scored {n_turns:,} traffic turns x {len(heads)} head(s) for run {run_id}")
    return n_turns


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Bulk-insert ``frame`` (columns in the table's order) through Arrow."""
    con.register("_frame", frame.to_arrow())
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _frame")
    finally:
        con.unregister("_frame")


def _score_frame(scorer: Scorer, rows: pl.DataFrame,
                 progress: Progress | None) -> dict[str, np.ndarray]:
    """Embed (cached) and score a frame with ``prompt_id``/``prompt`` and
    ``response_text_id``/``response`` columns."""
    ids = rows["prompt_id"].to_list() + rows["response_text_id"].to_list()
    bodies = rows["prompt"].to_list() + rows["response"].to_list()
    embeddings = scorer.embed(ids, bodies, progress)
    n = rows.height
    scored = scorer.score(embeddings[:n], embeddings[n:])
    if scorer.tags is not None and scorer.tags.models:
        scored["predicted_tags"] = scorer.tags.predict(  # type: ignore[assignment]
            turn_features(scorer.checkpoint, embeddings[:n], embeddings[n:]))
    return scored


def score_rows(scorer: Scorer, rows: pl.DataFrame, progress: Progress | None = None,
               batch_turns: int = 50_000) -> pl.DataFrame:
    """``rows`` (with ``prompt`` and ``response`` texts) plus a score column per head,
    ``knn_percentile``, ``extrapolating``, for runs with schools the school signals and for
    runs with ensemble members ``ensemble_spread``."""
    from dissensus.warehouse.ids import text_id

    heads = standardised_head_names(scorer.checkpoint)
    parts = []
    for start in range(0, rows.height, batch_turns):
        chunk = rows.slice(start, batch_turns)
        keyed = chunk.with_columns(
            pl.col("prompt").map_elements(text_id, return_dtype=pl.String).alias("prompt_id"),
            pl.col("response").map_elements(text_id, return_dtype=pl.String)
            .alias("response_text_id"))
        scored = _score_frame(scorer, keyed, progress)
        extra = [pl.Series(f"score_{h}", scored[h]) for h in heads]
        extra += [pl.Series("knn_percentile", scored["percentile"]),
                  pl.Series("extrapolating", scored["distance"] > scorer.reference.p99)]
        if "spread" in scored:
            extra += [pl.Series("school_spread", scored["spread"]),
                      pl.Series("schools_disagree", scored["contested"])]
        if "ensemble_spread" in scored:
            extra.append(pl.Series("ensemble_spread", scored["ensemble_spread"]))
        parts.append(chunk.with_columns(extra))
    return pl.concat(parts) if parts else rows


def read_rows(path: Path) -> pl.DataFrame:
    """Rows of (prompt, response, ...) from a JSONL, CSV or Parquet file (gzip too), checked:
    a missing column or an empty text fails in words with its line."""
    import io

    from dissensus.warehouse.readers import open_maybe_gzip
    from dissensus.warehouse.traffic import format_of

    fmt = format_of(path)
    try:
        with open_maybe_gzip(path) as stream:
            data = stream.read()
        frame = (pl.read_parquet(io.BytesIO(data)) if fmt == "parquet" else
                 pl.read_csv(io.BytesIO(data), infer_schema=False) if fmt == "csv" else
                 pl.read_ndjson(io.BytesIO(data)))
    except (pl.exceptions.PolarsError, OSError, ValueError) as error:
        raise RewardModelError(f"{path} could not be read as {fmt}: {error}", where=str(path),
                               expected=f"a {fmt} file of prompt/response rows",
                               fix="check the file (its name's suffix sets the format)"
                               ) from error
    for column in ("prompt", "response"):
        if column not in frame.columns:
            raise RewardModelError(
                f"{path} has no '{column}' column.", where=str(path),
                expected="columns prompt and response (other columns are kept as they are)",
                fix=f"rename the column holding the {column} texts to '{column}'")
        bad = frame.with_row_index("row", 1).filter(
            pl.col(column).cast(pl.String).str.strip_chars().fill_null("") == "")
        if bad.height:
            line = int(bad["row"][0]) + (1 if fmt == "csv" else 0)
            raise RewardModelError(
                f"{bad.height} row(s) of {path} have no {column} text.",
                where=f"{path}, {'line' if fmt != 'parquet' else 'row'} {line}, field {column}",
                expected=f"a non-empty {column} on every row",
                fix="fill in or remove those rows")
    return frame.with_columns(pl.col("prompt").cast(pl.String), pl.col("response").cast(pl.String))


def write_rows(frame: pl.DataFrame, path: Path) -> None:
    """``frame`` as JSONL, CSV or Parquet by ``path``'s suffix."""
    from dissensus.warehouse.traffic import format_of

    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = format_of(path)
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "csv":
        frame.write_csv(path)
    else:
        frame.write_ndjson(path)
