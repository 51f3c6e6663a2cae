"""Reward-model jobs behind `dissensus train / evaluate / score`.

* :func:`train_run` trains one reward model, saves its checkpoint beside the warehouse
  (``<db>.reward_runs/<run_id>/``; the folders beside a warehouse are placed by
  :mod:`dissensus.warehouse.artefacts`) and records the run in ``reward_runs`` with its config
  and held-out metrics.
* :func:`evaluate_run` reloads a run's checkpoint (checking encoder and config) and recomputes
  the held-out metrics on the same split.
* :func:`score_run` writes ``reward_scores`` for every response in the warehouse and every head,
  standardised by the reward mean / std on the validation set (distributional runs write
  ``mean`` and ``sd``; ``sd`` is on the same standardised scale).
* :func:`ensemble_spread`: for runs trained with ``ensemble`` > 1, the members' spread, which
  traffic scoring and the API report beside the heads.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import torch

from dissensus.models.reward.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dissensus.models.reward.config import RewardConfig, make_config
from dissensus.models.reward.data import response_table, text_bodies
from dissensus.models.reward.encoder import Progress, SentenceEncoder
from dissensus.models.reward.errors import RewardModelError
from dissensus.models.reward.evaluate import evaluate_model
from dissensus.models.reward.finetune import load_finetuned_encoder
from dissensus.models.reward.heads import head_names
from dissensus.models.reward.pipeline import (
    encoder_for,
    model_inputs,
    prepare,
    train_and_evaluate,
    use_mixture_schools,
)
from dissensus.models.reward.train import response_outputs
from dissensus.warehouse.artefacts import embeddings_folder, reward_runs_folder
from dissensus.warehouse.db import database_path
from dissensus.warehouse.fits import fit_schools_unseen

Log = Callable[[str], None]


def runs_folder(con: duckdb.DuckDBPyConnection) -> Path:
    """``<db>.reward_runs`` beside the warehouse; a temporary folder for in-memory ones."""
    path = database_path(con)
    if path is None:
        return Path(tempfile.mkdtemp(prefix="dissensus-reward-runs-"))
    return reward_runs_folder(path)


def embedding_cache(
    con: duckdb.DuckDBPyConnection, cache_folder: Path | None = None
) -> Path | None:
    """``cache_folder`` if given, else ``<db>.embeddings`` beside the warehouse; ``None`` (cache
    in memory only) for an in-memory warehouse."""
    if cache_folder is not None:
        return cache_folder
    path = database_path(con)
    return None if path is None else embeddings_folder(path)


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _require_preferences(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse, in words, a warehouse whose comparisons are all ties: a reward model learns from
    which reply was preferred, and a tie prefers neither."""
    n_all, n_pref = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE outcome <> 0) FROM comparisons").fetchall()[0]
    if n_all and not n_pref:
        raise RewardModelError(
            f"All {n_all:,} comparisons are ties, so there is no preference to learn from "
            "(and no held-out accuracy to measure).",
            expected="comparisons where a reviewer chose reply a or b",
            fix="ingest comparisons with a preference, then train again",
        )


def warn_if_schools_unseen(con: duckdb.DuckDBPyConnection, kind: str, fit_id: str | None,
                           n_schools: int, log: Log) -> None:
    """Say so before training school heads on a fit whose schools show on no pair (its
    ``schools_unseen``): the heads would learn a split that no pair of the training data
    shows, so their disagreement says little."""
    heads = head_names(kind, n_schools)
    if not any(h.startswith("school_") for h in heads):
        return
    if fit_schools_unseen(con, fit_id):
        log(f"warning: fit {fit_id} chose {n_schools} schools but calls no pair pluralism, so "
            "no pair shows the split the school heads will learn: read their disagreement as "
            "weak evidence, or train a single-head kind (plain, weighted)")


def train_run(
    con: duckdb.DuckDBPyConnection, kind: str, fit_id: str | None = None,
    config: RewardConfig | dict[str, object] | None = None, *, log: Log = print,
    cache_folder: Path | None = None, checkpoint_folder: Path | None = None,
    progress: Progress | None = None,
) -> str:
    """Train a ``kind`` model, save its checkpoint, record it in ``reward_runs``; its run id.
    ``progress(done, total)`` follows the embedding of texts not in the cache yet."""
    if config is None or isinstance(config, dict):
        config = make_config(kind, **(config or {}))
    elif config.kind != kind:
        raise RewardModelError(f"The config is for kind '{config.kind}', not '{kind}'.",
                               fix="pass a config of the kind asked for")
    _require_preferences(con)
    cache = embedding_cache(con, cache_folder)
    prepared = prepare(con, config, fit_id, cache, log, progress=progress)
    warn_if_schools_unseen(con, kind, prepared.data.fit_id, prepared.data.n_schools, log)
    result, metrics = train_and_evaluate(prepared, config, response_table(con), log)
    config = result.config or config  # 'auto' settings resolved to the ones chosen
    created = datetime.now(UTC)
    digest = hashlib.sha256(f"{config.config_hash()}{created.isoformat()}".encode()).hexdigest()
    run_id = f"{kind}-{created:%Y%m%d-%H%M%S}-{digest[:6]}"
    folder = (checkpoint_folder or runs_folder(con)) / run_id
    heads = head_names(kind, prepared.data.n_schools, getattr(config, "spread_from", "votes"))
    extra: dict[str, object] = {"run_id": run_id, "n_schools": prepared.data.n_schools}
    if "finetune" in metrics and isinstance(prepared.encoder, SentenceEncoder):
        folder.mkdir(parents=True, exist_ok=True)
        prepared.encoder.model.save(str(folder / "encoder"))  # safetensors weights
        extra |= {"encoder_folder": "encoder",
                  "encoder_base": prepared.encoder_id.rsplit("-ft-", 1)[0],
                  "finetuned_parameters": [n for n, p in prepared.encoder.model.named_parameters()
                                           if p.requires_grad]}
    save_checkpoint(
        folder, result.model, config, encoder_id=prepared.encoder_id, heads=heads,
        reward_mean=result.reward_mean, reward_std=result.reward_std,
        fit_id=prepared.data.fit_id, extra=extra, ensemble=prepared.ensemble,
    )
    metrics["embedding"] = {"seconds": prepared.embed_seconds,
                            "texts_embedded": prepared.texts_embedded,
                            "texts": prepared.data.texts.height}
    con.execute(
        "INSERT INTO reward_runs (run_id, created_at, kind, fit_id, encoder, device, config, "
        "metrics, checkpoint_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, created.replace(tzinfo=None), kind, prepared.data.fit_id, prepared.encoder_id,
         result.device, json.dumps(config.model_dump(mode="json")),
         json.dumps(_json_safe(metrics)), str(folder)],
    )
    if not metrics.get("n_labelled_pairs"):
        log("warning: no held-out pair has a clear consensus (every held-out pair is a tie or "
            "evenly split), so the accuracy below cannot be measured; hold out more pairs "
            "(--set test_share=0.3) or add comparisons with a preference")
    log(f"run {run_id}: accuracy vs consensus {metrics.get('accuracy_consensus', float('nan')):.3f}"
        f" on {metrics.get('n_labelled_pairs', 0)} held-out pairs; checkpoint {folder}")
    return run_id


def _run_row(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, object]:
    rows = con.sql(
        "SELECT run_id, kind, fit_id, encoder, checkpoint_path FROM reward_runs WHERE run_id = ?",
        params=[run_id],
    ).pl()
    if rows.height == 0:
        known = [r[0] for r in con.execute(
            "SELECT run_id FROM reward_runs ORDER BY created_at DESC LIMIT 5").fetchall()]
        raise RewardModelError(
            f"There is no reward run '{run_id}'.", where="reward_runs",
            expected="a run id made by `dissensus train`"
            + (f", e.g. {', '.join(known)}" if known else " (there are none yet)"),
            fix="list runs with `SELECT run_id FROM reward_runs`, or train one first",
        )
    return rows.row(0, named=True)


def load_run(con: duckdb.DuckDBPyConnection, run_id: str):  # type: ignore[no-untyped-def]
    """``(reward_runs row, checkpoint, encoder)`` of a run; an unknown run, a missing
    checkpoint or a missing encoder fails in words."""
    row = _run_row(con, run_id)
    meta_path = Path(str(row["checkpoint_path"]))
    meta = json.loads((meta_path / "reward_model.json").read_text()) \
        if (meta_path / "reward_model.json").exists() else None
    if meta is None:
        return row, load_checkpoint(meta_path), None
    config = make_config(row["kind"], **{k: v for k, v in meta["config"].items() if k != "kind"})
    encoder = (load_finetuned_encoder(meta_path, meta, config) if meta.get("encoder_folder")
               else encoder_for(config))
    checkpoint = load_checkpoint(meta_path, encoder_id=encoder.encoder_id)
    return row, checkpoint, encoder


def evaluate_run(
    con: duckdb.DuckDBPyConnection, run_id: str, *, log: Log = print,
    cache_folder: Path | None = None, progress: Progress | None = None,
) -> dict[str, object]:
    """Held-out metrics of a saved run, recomputed from its checkpoint on the same split."""
    row, checkpoint, encoder = load_run(con, run_id)
    cache = embedding_cache(con, cache_folder)
    config = checkpoint.config
    prepared = prepare(con, config, row["fit_id"], cache, log, encoder=encoder,  # type: ignore[arg-type]
                       progress=progress)
    if config.kind == "mixture":
        stored = con.execute("SELECT metrics FROM reward_runs WHERE run_id = ?",
                             [run_id]).fetchall()
        use_mixture_schools(prepared.data, json.loads(stored[0][0] or "{}"))
    metrics = evaluate_model(
        checkpoint.model, config.kind, prepared.data, torch.as_tensor(prepared.embeddings),
        response_table(con), link=getattr(config, "link", "probit"),
        min_log_var=getattr(config, "min_log_var", -6.0),
        reward_mean=list(checkpoint.meta["reward_mean"]),  # type: ignore[call-overload]
        reward_std=list(checkpoint.meta["reward_std"]),  # type: ignore[call-overload]
    )
    return _json_safe(metrics)  # type: ignore[return-value]


def standardised_scores(checkpoint: Checkpoint, out: np.ndarray) -> dict[str, np.ndarray]:
    """Raw head outputs (rows x heads) as scores per head name, standardised by the reward
    mean / std on the validation set (distributional runs: ``mean`` and ``sd``)."""
    mean = np.asarray(checkpoint.meta["reward_mean"], dtype=float)
    std = np.asarray(checkpoint.meta["reward_std"], dtype=float)
    columns: dict[str, np.ndarray] = {}
    if checkpoint.config.kind == "distributional":
        min_log_var = getattr(checkpoint.config, "min_log_var", -6.0)
        columns["mean"] = (out[:, 0] - mean[0]) / std[0]
        # the spread in the mean's standardised units: |lean| (between-school sd) or sigma
        spread = (np.abs(out[:, 1]) if getattr(checkpoint.config, "spread_from", "votes")
                  == "schools" else np.exp(np.maximum(out[:, 1], min_log_var) / 2))
        columns["sd"] = spread / std[0]
    else:
        for k, head in enumerate(checkpoint.heads):
            columns[head] = (out[:, k] - mean[k]) / std[k]
    return columns


def ensemble_spread(checkpoint: Checkpoint, columns: dict[str, np.ndarray],
                    prompts: torch.Tensor, replies: torch.Tensor) -> np.ndarray | None:
    """The ensemble's spread per row (:mod:`dissensus.models.reward.ensemble`) from the run's
    standardised ``columns`` and the rows' prompt and reply inputs; None without members."""
    if checkpoint.ensemble is None:
        return None
    return checkpoint.ensemble.spread(columns[checkpoint.ensemble.head], prompts, replies)


def predicted_disagreements(con: duckdb.DuckDBPyConnection, run_id: str,
                            limit: int = 50) -> pl.DataFrame:
    """The warehouse's pairs the run's school heads most expect the schools to split on:
    pair_id, prompt, both replies, each school head's P(reply 1 preferred) and
    ``p_disagree`` (:func:`~dissensus.models.reward.evaluate.disagreement_probability`), from
    the run's stored scores (``dissensus score RUN``). Empty for runs without school heads,
    without scores, or trained before the reward scale was kept with the metrics."""
    from dissensus.models.reward.evaluate import disagreement_probability

    rows = con.execute("SELECT metrics FROM reward_runs WHERE run_id = ?", [run_id]).fetchall()
    metrics = json.loads(rows[0][0]) if rows and rows[0][0] else {}
    scale = metrics.get("reward_scale") or {}
    heads = (metrics.get("training") or {}).get("heads") or []
    schools = [h for h in heads if h.startswith("school_")]
    shares = (metrics.get("disagreement") or {}).get("school_shares")
    if len(schools) < 2 or not scale.get("std") or not shares:
        return pl.DataFrame()
    scores = con.sql("""
        SELECT p.pair_id, p.prompt_id, s1.head, s1.score AS s1, s2.score AS s2
        FROM pairs p
        JOIN reward_scores s1 ON s1.response_id = p.response_1_id AND s1.run_id = ?
        JOIN reward_scores s2 ON s2.response_id = p.response_2_id AND s2.run_id = ?
                             AND s2.head = s1.head
        WHERE s1.head LIKE 'school_%'
    """, params=[run_id, run_id]).pl()
    if scores.height == 0:
        return pl.DataFrame()
    wide = scores.pivot(on="head", index=["pair_id", "prompt_id"],
                        values=["s1", "s2"]).drop_nulls()
    probs = np.column_stack([
        1 / (1 + np.exp(-scale["std"][heads.index(h)]
                        * (wide[f"s1_{h}"].to_numpy() - wide[f"s2_{h}"].to_numpy())))
        for h in schools])
    out = wide.select("pair_id", "prompt_id").with_columns(
        *[pl.Series(f"p_{h}", probs[:, k]) for k, h in enumerate(schools)],
        pl.Series("p_disagree", disagreement_probability(probs, np.asarray(shares))),
    ).sort("p_disagree", descending=True).head(limit)
    texts = con.sql("""
        SELECT p.pair_id, tp.body AS prompt, t1.body AS response_1, t2.body AS response_2
        FROM pairs p JOIN texts tp ON tp.text_id = p.prompt_id
        JOIN responses r1 ON r1.response_id = p.response_1_id
        JOIN responses r2 ON r2.response_id = p.response_2_id
        JOIN texts t1 ON t1.text_id = r1.text_id JOIN texts t2 ON t2.text_id = r2.text_id
        WHERE p.pair_id IN (SELECT unnest(?::VARCHAR[]))
    """, params=[out["pair_id"].to_list()]).pl()
    return out.join(texts, on="pair_id", how="left", maintain_order="left").drop("prompt_id")


def score_run(
    con: duckdb.DuckDBPyConnection, run_id: str, *, log: Log = print,
    cache_folder: Path | None = None, progress: Progress | None = None,
) -> int:
    """Write ``reward_scores`` for every response and head of a run; the number of rows."""
    _, checkpoint, encoder = load_run(con, run_id)
    responses = response_table(con)
    if responses.height == 0:
        raise RewardModelError("The warehouse holds no responses to score.",
                               fix="ingest comparisons first")
    ids = pl.concat([responses["prompt_id"], responses["text_id"]]).unique(maintain_order=True)
    texts = text_bodies(con, ids.to_list())
    cache = embedding_cache(con, cache_folder)
    embeddings, _ = model_inputs(checkpoint.config, encoder, cache,  # type: ignore[arg-type]
                                 texts["text_id"].to_list(), texts["body"].to_list(), progress)
    index = {t: i for i, t in enumerate(texts["text_id"].to_list())}
    prompt = torch.as_tensor([index[t] for t in responses["prompt_id"].to_list()])
    response = torch.as_tensor([index[t] for t in responses["text_id"].to_list()])
    out = response_outputs(checkpoint.model, torch.as_tensor(embeddings), prompt, response).numpy()
    columns = standardised_scores(checkpoint, out)
    scores = pl.concat([
        pl.DataFrame({"run_id": run_id, "response_id": responses["response_id"],
                      "head": head, "score": values.astype(float)})
        for head, values in columns.items()
    ])
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM reward_scores WHERE run_id = ?", [run_id])
        con.execute("INSERT INTO reward_scores (run_id, response_id, head, score) "
                    "SELECT run_id, response_id, head, score FROM scores")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    log(f"scored {responses.height:,} responses x {len(columns)} head(s) for run {run_id}")
    return scores.height
