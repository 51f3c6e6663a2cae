"""Scores and drift signals of embedded (prompt, reply) turns: the inner loop of scoring traffic.

:func:`score_embedded` takes rows of cached prompt and reply embeddings to every head's
standardised reward, the extrapolation distance and its percentile
(:mod:`dissensus.analytics.drift.reference`), the school signals (:func:`school_signals`), the
ensemble spread of runs with members and the PCA projection for the drift tests.

**Speed.** Rows go through in blocks of ``batch`` (4,096): heads, kNN search and projection
of one block before the next, so a block's temporaries (the trunk's 3 x 384 inputs, its
distances to every indexed reply) stay in the CPU's cache instead of table-sized arrays being
written and read again at every step. The blocks are independent, so they are spread over
worker threads that each run torch on one thread (:mod:`dissensus.analytics.drift.workers`:
torch's own threads meet at a barrier after every operation, which on a shared CPU made two
threads slower than one).
"""

from __future__ import annotations

import numpy as np
import torch

from dissensus.analytics.drift.reference import Reference, joint_features
from dissensus.analytics.drift.workers import map_on_workers
from dissensus.analytics.jobs.reward import ensemble_spread, standardised_scores
from dissensus.models.reward.checkpoint import Checkpoint
from dissensus.models.reward.encoder import LENGTH_COLUMNS

#: Two schools disagree on a reply when their standardised rewards have opposite signs and
#: lie at least this far apart (one reward standard deviation).
CONTESTED_GAP = 1.0


def turn_features(checkpoint: Checkpoint, prompts: np.ndarray,
                  replies: np.ndarray) -> np.ndarray:
    """The drift space of (prompt, reply) rows: the encoder's embeddings only. A run trained
    with ``length_features`` feeds its head two log-length columns as well; they are left out
    here, or their scale (log characters ~ 5 against unit-length embeddings) would make the
    nearest training reply the one of nearest length."""
    if getattr(checkpoint.config, "length_features", False):
        prompts, replies = prompts[:, :-LENGTH_COLUMNS], replies[:, :-LENGTH_COLUMNS]
    return joint_features(prompts, replies)


def school_signals(checkpoint: Checkpoint, scores: dict[str, np.ndarray]
                   ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(spread, contested)`` per row, or ``(None, None)`` for runs without schools.

    Multi-head: spread = the standard deviation of the school heads' standardised rewards;
    contested when the highest and lowest school reward differ in sign and by at least
    :data:`CONTESTED_GAP`. Distributional with the spread from schools: the two schools sit at
    ``mean +- sd``, so spread = ``sd`` and contested when ``sd > |mean|`` and ``2 sd >= gap``.
    """
    schools = [h for h in scores if h.startswith("school_")]
    if len(schools) >= 2:
        matrix = np.stack([scores[h] for h in schools], axis=1)
        high, low = matrix.max(axis=1), matrix.min(axis=1)
        return matrix.std(axis=1), (high > 0) & (low < 0) & (high - low >= CONTESTED_GAP)
    if "sd" in scores and getattr(checkpoint.config, "spread_from", "votes") == "schools":
        sd, mean = scores["sd"], scores["mean"]
        return sd, (sd > np.abs(mean)) & (2 * sd >= CONTESTED_GAP)
    return None, None


def score_embedded(checkpoint: Checkpoint, reference: Reference, prompts: np.ndarray,
                   replies: np.ndarray, batch: int = 4096) -> dict[str, np.ndarray]:
    """Heads' scores, ``distance``, ``percentile``, ``spread``, ``contested``,
    ``ensemble_spread`` (runs with members) and ``projection`` for rows of prompt and reply
    embeddings (the throughput benchmark's path)."""
    model = checkpoint.model.eval()
    device = next(model.parameters()).device
    n = len(prompts)
    raw = np.empty((n, model.n_outputs), np.float32)
    distance = np.empty(n)
    projection = np.empty((n, reference.pca.n_components_), np.float32)
    members = np.empty(n) if checkpoint.ensemble is not None else None

    def block(start: int) -> None:
        stop = start + batch
        p, r = prompts[start:stop], replies[start:stop]
        with torch.inference_mode():  # no autograd bookkeeping: about twice as fast on a CPU
            heads = model(torch.as_tensor(p, device=device), torch.as_tensor(r, device=device))
            raw[start:stop] = heads.float().cpu().numpy()
        if members is not None:
            members[start:stop] = ensemble_spread(  # type: ignore[index]
                checkpoint, standardised_scores(checkpoint, raw[start:stop]),
                torch.as_tensor(p), torch.as_tensor(r))
        features = turn_features(checkpoint, p, r)
        distance[start:stop] = reference.distance(features)
        projection[start:stop] = reference.project(features)

    map_on_workers(block, range(0, n, batch))  # each block writes its rows in place
    result: dict[str, np.ndarray] = dict(standardised_scores(checkpoint, raw))
    if members is not None:
        result["ensemble_spread"] = members
    result["distance"] = distance
    result["percentile"] = reference.percentile(distance)
    spread, contested = school_signals(checkpoint, result)
    if spread is not None:
        result["spread"], result["contested"] = spread, contested
    result["projection"] = projection
    return result
