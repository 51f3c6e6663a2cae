"""``POST /v1/score``: rewards per head for prompt/response pairs, from a saved reward run.

The run is loaded as ``dissensus evaluate`` / ``score`` load it (checkpoint, its encoder, checks
that they match) and kept for the next request. Scores are standardised exactly as
:func:`dissensus.analytics.jobs.reward.score_run` writes ``reward_scores`` (by the reward mean and
sd on the run's validation set), so a score from the API and one in the warehouse compare.
Posted texts are embedded in memory only: they are not added to the warehouse's embedding cache.
Runs trained with ``ensemble`` > 1 also get ``ensemble_spread``, one value per pair, as
``dissensus score --traffic`` computes it.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import duckdb
import torch

from dissensus.analytics.api.errors import ApiError

# the loader behind `dissensus evaluate` and `score` (checkpoint, encoder and their checks)
from dissensus.analytics.jobs.reward import ensemble_spread, load_run, standardised_scores
from dissensus.models.reward.pipeline import model_inputs
from dissensus.models.reward.train import response_outputs
from dissensus.warehouse.fits import latest_run as newest_run

_loaded: dict[str, tuple[Any, Any]] = {}
_lock = threading.Lock()  # one model in memory per run; torch inference one call at a time


def latest_run(con: duckdb.DuckDBPyConnection) -> str:
    """The newest reward run (:func:`dissensus.warehouse.fits.latest_run`), or a 404 saying how
    to make one."""
    run = newest_run(con)
    if run is None:
        raise ApiError(404, "no_run", "The warehouse holds no reward run to score with.",
                       expected="a run made by `dissensus train` or POST /v1/jobs/train",
                       fix="train one with POST /v1/jobs/train, then score again")
    return run


def _text_id(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def score_pairs(con: duckdb.DuckDBPyConnection, run_id: str | None,
                pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``{"run_id", "heads", "scores": [{head: score}, ...]}`` for (prompt, response) pairs,
    and ``"ensemble_spread": [...]`` (one per pair) for runs with ensemble members."""
    run_id = run_id or latest_run(con)
    with _lock:
        if run_id not in _loaded:
            _, checkpoint, encoder = load_run(con, run_id)
            if encoder is None:
                raise ApiError(409, "old_checkpoint",
                               f"Run {run_id} was saved without its encoder settings.",
                               expected="a run trained by this version of dissensus",
                               fix="train the run again (POST /v1/jobs/train)")
            _loaded.clear()  # keep one run's model in memory
            _loaded[run_id] = (checkpoint, encoder)
        checkpoint, encoder = _loaded[run_id]
        bodies = list(dict.fromkeys([t for pair in pairs for t in pair]))
        index = {body: i for i, body in enumerate(bodies)}
        embeddings, _ = model_inputs(checkpoint.config, encoder, None,
                                     [_text_id(b) for b in bodies], bodies)
        prompt = torch.as_tensor([index[p] for p, _ in pairs])
        response = torch.as_tensor([index[r] for _, r in pairs])
        rows = torch.as_tensor(embeddings)
        with torch.no_grad():
            out = response_outputs(checkpoint.model, rows, prompt, response).numpy()
        columns = standardised_scores(checkpoint, out)  # as score_run writes them
        spread = ensemble_spread(checkpoint, columns, rows[prompt], rows[response])
    heads = list(columns)
    scores = [{h: float(columns[h][i]) for h in heads} for i in range(len(pairs))]
    answer = {"run_id": run_id, "kind": checkpoint.config.kind, "heads": heads, "scores": scores}
    if spread is not None:
        answer["ensemble_spread"] = [float(x) for x in spread]
    return answer
