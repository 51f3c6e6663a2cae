"""A small simulator of pairwise judgments with known truth, for unit tests and oracle checks.

It follows the generative process of the demo world (``warehouse.demo``), in miniature and with
no texts: schools ``k`` with shares; per pair ``j`` margins ``m_{j,k}`` (response 1 vs response 2,
canonical orientation); reviewer ``r`` with school ``k(r)``, lapse rate ``eps_r`` (careful
0-0.08, rushed 0.30-0.50), position bias ``beta_r`` and lapse tilt ``gamma_r``. A judgment shows
response 1 first (``s = +1``) or second (``s = -1``). With probability ``1 - eps_r`` it is
careful: ``eta = m_{j,k(r)} + beta_r s`` and ``P(+1) = sigmoid(eta - tau)``,
``P(-1) = sigmoid(-eta - tau)``, ``P(tie) = 1 - P(+1) - P(-1)``. Otherwise it is a lapse: the
first-shown reply wins with probability ``gamma_r`` (no ties).

The truth frames use the demo world's column names, so tests and benchmarks can switch between the
two without change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.special import expit


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the miniature world (defaults: the issue-3 benchmark world, scaled down)."""

    n_reviewers: int = 60
    n_pairs: int = 300
    school_shares: tuple[float, ...] = (0.65, 0.35)
    rushed_share: float = 0.15
    position_biased_share: float = 0.08
    contested_share: float = 0.20
    ambiguous_share: float = 0.15
    votes_per_pair: tuple[int, int] = (3, 8)
    workload_sigma: float = 0.8
    tau: float = 0.35
    seed: int = 0
    school_names: tuple[str, ...] = field(default=("caution_first", "access_first", "third"))


@dataclass(frozen=True)
class SyntheticWorld:
    """Truth and observations; ``judgments`` carries the outcome and presentation order."""

    reviewers: pl.DataFrame
    pairs: pl.DataFrame
    judgments: pl.DataFrame
    tau: float
    school_shares: tuple[float, ...]


def simulate(config: SyntheticConfig | None = None) -> SyntheticWorld:
    """Draw a world from the generative process described in the module docstring."""
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    n_k = len(cfg.school_shares)
    names = [
        cfg.school_names[k] if k < len(cfg.school_names) else f"school_{k}" for k in range(n_k)
    ]
    shares = np.asarray(cfg.school_shares, dtype=float) / np.sum(cfg.school_shares)

    # reviewers
    n_r = cfg.n_reviewers
    school = rng.choice(n_k, size=n_r, p=shares)
    rushed = rng.random(n_r) < cfg.rushed_share
    biased = (~rushed) & (rng.random(n_r) < cfg.position_biased_share)
    eps = np.where(rushed, rng.uniform(0.30, 0.50, n_r), rng.uniform(0.0, 0.08, n_r))
    beta = np.where(biased, rng.uniform(0.8, 1.5, n_r), rng.normal(0.0, 0.05, n_r))
    gamma = rng.choice([0.5, 0.75], size=n_r)
    activity = rng.lognormal(0.0, cfg.workload_sigma, n_r)
    activity /= activity.sum()

    # pairs
    n_j = cfg.n_pairs
    u = rng.random(n_j)
    contested = u < cfg.contested_share
    ambiguous = (~contested) & (u < cfg.contested_share + cfg.ambiguous_share)
    consensus = rng.normal(0.0, 2.0, n_j)
    consensus = np.where(ambiguous, rng.normal(0.0, 0.25, n_j), consensus)
    margins = np.repeat(consensus[:, None], n_k, axis=1)
    if n_k > 1:
        sign = rng.choice([-1.0, 1.0], size=n_j)
        for k in range(n_k):
            side = sign if k % 2 == 0 else -sign
            dev = side * rng.uniform(1.5, 3.0, n_j)
            margins[:, k] = np.where(contested, dev, margins[:, k])
        consensus = np.where(contested, margins @ shares, consensus)
    kind = np.where(contested, "contested", np.where(ambiguous, "ambiguous", "clear"))

    # judgments
    rows_r: list[int] = []
    rows_j: list[int] = []
    lo, hi = cfg.votes_per_pair
    for j in range(n_j):
        n_votes = int(rng.integers(lo, hi + 1))
        who = rng.choice(n_r, size=min(n_votes, n_r), replace=False, p=activity)
        rows_r.extend(who.tolist())
        rows_j.extend([j] * len(who))
    r_idx = np.asarray(rows_r)
    j_idx = np.asarray(rows_j)
    n = len(r_idx)
    first_is_1 = rng.random(n) < 0.5
    s = np.where(first_is_1, 1.0, -1.0)
    careful = rng.random(n) >= eps[r_idx]
    eta = margins[j_idx, school[r_idx]] + beta[r_idx] * s
    p_plus = expit(eta - cfg.tau)
    p_minus = expit(-eta - cfg.tau)
    v = rng.random(n)
    careful_outcome = np.where(v < p_plus, 1, np.where(v < p_plus + p_minus, -1, 0))
    first_wins = rng.random(n) < gamma[r_idx]
    lapse_outcome = np.where(first_wins, s, -s).astype(int)
    outcome = np.where(careful, careful_outcome, lapse_outcome).astype(np.int8)

    reviewer_ids = [f"r{i:04d}" for i in range(n_r)]
    pair_ids = [f"p{j:05d}" for j in range(n_j)]
    reviewers = pl.DataFrame(
        {
            "reviewer_id": reviewer_ids,
            "school": [names[k] for k in school],
            "school_index": school.astype(np.int64),
            "lapse_rate": eps,
            "position_bias": beta,
            "lapse_tilt": gamma,
            "is_rushed": rushed,
            "is_position_biased": biased,
        }
    )
    pair_cols: dict[str, object] = {"pair_id": pair_ids, "category": ["general"] * n_j}
    for k in range(n_k):
        pair_cols[f"margin_{names[k]}"] = margins[:, k]
    pair_cols.update(
        {"consensus_margin": consensus, "contested": contested, "ambiguous": ambiguous,
         "kind": kind.tolist()}
    )
    pairs = pl.DataFrame(pair_cols)
    judgments = pl.DataFrame(
        {
            "comparison_id": [f"c{i:06d}" for i in range(n)],
            "reviewer_id": [reviewer_ids[i] for i in r_idx],
            "pair_id": [pair_ids[j] for j in j_idx],
            "prompt_id": [f"q{j:05d}" for j in j_idx],
            "careful": careful,
            "first_shown_is_response_1": first_is_1,
            "outcome": outcome,
        }
    )
    return SyntheticWorld(reviewers, pairs, judgments, cfg.tau, tuple(shares.tolist()))


def model_frame_from_judgments(judgments: pl.DataFrame) -> pl.DataFrame:
    """The annotator model's input frame from a truth ``judgments`` table (demo or synthetic)."""
    cols = judgments.columns
    prompt = pl.col("prompt_id") if "prompt_id" in cols else pl.col("pair_id")
    return judgments.select(
        pl.col("comparison_id").cast(pl.String),
        pl.col("reviewer_id").cast(pl.String),
        pl.col("pair_id").cast(pl.String),
        prompt.cast(pl.String).alias("prompt_id"),
        pl.col("outcome").cast(pl.Int8),
        pl.when(pl.col("first_shown_is_response_1").is_null())
        .then(None)
        .when(pl.col("first_shown_is_response_1"))
        .then(1)
        .otherwise(2)
        .cast(pl.Int8)
        .alias("first_shown"),
    )


def model_frame_from_world(judgments: pl.DataFrame, pairs: pl.DataFrame,
                           responses: pl.DataFrame | None = None) -> pl.DataFrame:
    """The model frame of a simulated world, with each pair's ``prompt_id`` from ``pairs`` and,
    given the world's ``responses``, each reply's tags, length and model and the prompt's
    category."""
    frame = model_frame_from_judgments(judgments.drop("prompt_id", strict=False))
    if "prompt_id" in pairs.columns:
        frame = frame.drop("prompt_id").join(
            pairs.select("pair_id", pl.col("prompt_id").cast(pl.String)), on="pair_id", how="left"
        ).select(frame.columns)
    if "response_1_id" in pairs.columns and "response_2_id" in pairs.columns:
        frame = frame.join(
            pairs.select("pair_id", pl.col("response_1_id").cast(pl.String),
                         pl.col("response_2_id").cast(pl.String)),
            on="pair_id", how="left",
        )
        if responses is not None and "tags" in responses.columns:
            tags = responses.select(pl.col("response_id").cast(pl.String),
                                    pl.col("tags").str.split(","))
            frame = frame.join(
                tags.rename({"response_id": "response_1_id", "tags": "response_1_tags"}),
                on="response_1_id", how="left",
            ).join(
                tags.rename({"response_id": "response_2_id", "tags": "response_2_tags"}),
                on="response_2_id", how="left",
            )
            if "category" in pairs.columns:
                frame = frame.join(pairs.select("pair_id", "category"), on="pair_id", how="left")
        if responses is not None:
            # the replies' lengths and models, as the warehouse's model frame carries them
            props = [pl.col("response_id").cast(pl.String)]
            if "text" in responses.columns:
                props.append(pl.col("text").str.len_chars().alias("length"))
            if "model" in responses.columns:
                props.append(pl.col("model").cast(pl.String))
            table = responses.select(props)
            for side in ("1", "2"):
                frame = frame.join(
                    table.rename({c: f"response_{side}_{c}" if c != "response_id"
                                  else f"response_{side}_id" for c in table.columns}),
                    on=f"response_{side}_id", how="left")
    return frame
