"""Reviewers, who judges which pair, and the judgments themselves (all vectorised).

Reviewer ``r`` (shares are exact counts, rounded, assigned by random permutation):

* school ``k(r)``: ``round(share_k * R)`` reviewers per school;
* rushed (``rushed_share``): lapse rate ``eps_r ~ Uniform(0.30, 0.50)``; others
  ``eps_r ~ Uniform(0, 0.08)``;
* position bias ``beta_r ~ Normal(0, 0.1)``, except ``position_biased_share`` of all reviewers,
  drawn among the careful ones, with ``beta_r ~ Uniform(0.8, 1.5)``;
* lapse tilt ``gamma_r = P(first-shown | lapse) = 0.5``, or 0.75 for half the rushed reviewers
  (those count as position-biased too);
* activity weight ``a_r ~ LogNormal(0, 1)``: each vote slot goes to reviewer ``r`` with
  probability proportional to ``a_r``, redrawn while the reviewer already judged that pair.

Judgment ``n`` by ``r`` on pair ``j`` with ``s_n = +1`` if response_1 was shown first, else -1:
with probability ``1 - eps_r`` careful, ``eta = m_{j,k(r)} + beta_r * s_n`` and
``P(response_1) = sigmoid(eta - tau)``, ``P(response_2) = sigmoid(-eta - tau)``, tie otherwise;
with probability ``eps_r`` a lapse: the first-shown reply wins with probability ``gamma_r``.
Optionally (``lapse_length_lean`` != 0, off in the demo world) a share ``|lean|`` of lapses
picks the longer reply instead (the shorter when the lean is negative), as a reviewer skimming
for effort might: a lapse with a direction, which can bias a model trained on it where a random
pick only adds variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

POOLS: Final = ("vendor-north", "vendor-south", "in-house")
LOCALES: Final = ("en-US", "en-GB", "en-IN", "en-PH", "es-US", "en-CA")
#: P(locale | pool), rows in the order of :data:`POOLS`.
_LOCALE_BY_POOL: Final = np.array(
    [
        [0.45, 0.15, 0.0, 0.0, 0.10, 0.30],
        [0.20, 0.0, 0.35, 0.30, 0.15, 0.0],
        [0.75, 0.20, 0.0, 0.0, 0.05, 0.0],
    ]
)
_CAREFUL_LAPSE: Final = (0.0, 0.08)
_RUSHED_LAPSE: Final = (0.30, 0.50)
_BIAS_SD: Final = 0.1
_STRONG_BIAS: Final = (0.8, 1.5)
_TILT: Final = 0.75
_ACTIVITY_SIGMA: Final = 1.0


@dataclass
class Reviewers:
    """True reviewer parameters, one entry per reviewer."""

    school_index: npt.NDArray[np.int64]
    lapse_rate: npt.NDArray[np.float64]
    position_bias: npt.NDArray[np.float64]
    lapse_tilt: npt.NDArray[np.float64]
    is_rushed: npt.NDArray[np.bool_]
    is_position_biased: npt.NDArray[np.bool_]
    activity: npt.NDArray[np.float64]
    pool: npt.NDArray[np.int64]
    locale: npt.NDArray[np.int64]
    tenure_months: npt.NDArray[np.int64]
    speed: npt.NDArray[np.float64]  # median seconds per judgment


def exact_counts(total: int, shares: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Split ``total`` into integer counts proportional to ``shares`` (largest remainder)."""
    raw = np.asarray(shares, dtype=np.float64) * total
    counts = np.floor(raw).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts


def draw_reviewers(
    rng: np.random.Generator,
    n: int,
    shares: npt.NDArray[np.float64],
    rushed_share: float,
    position_biased_share: float,
) -> Reviewers:
    """Draw ``n`` reviewers (see the module docstring for the distributions)."""
    school = np.repeat(np.arange(len(shares)), exact_counts(n, shares))[rng.permutation(n)]
    order = rng.permutation(n)
    n_rushed = min(n, round(rushed_share * n))
    rushed = np.zeros(n, dtype=bool)
    rushed[order[:n_rushed]] = True
    n_biased = min(n - n_rushed, round(position_biased_share * n))
    strongly_biased = np.zeros(n, dtype=bool)
    strongly_biased[order[n_rushed : n_rushed + n_biased]] = True
    tilted = np.zeros(n, dtype=bool)
    tilted[order[: round(n_rushed / 2)]] = True
    lapse = np.where(
        rushed, rng.uniform(*_RUSHED_LAPSE, size=n), rng.uniform(*_CAREFUL_LAPSE, size=n)
    )
    bias = np.where(
        strongly_biased, rng.uniform(*_STRONG_BIAS, size=n), rng.normal(0.0, _BIAS_SD, size=n)
    )
    pool_p = np.where(rushed[:, None], [[0.45, 0.45, 0.10]], [[0.35, 0.35, 0.30]])
    pool = _categorical(rng, pool_p)
    locale = _categorical(rng, _LOCALE_BY_POOL[pool])
    in_house = pool == POOLS.index("in-house")
    tenure = np.where(in_house, rng.integers(6, 61, size=n), rng.integers(1, 25, size=n))
    tenure = np.where(rushed, np.maximum(1, tenure // 2), tenure)
    speed = np.where(rushed, 12.0, 75.0) * rng.lognormal(0.0, 0.25, size=n)
    return Reviewers(
        school_index=school,
        lapse_rate=lapse,
        position_bias=bias,
        lapse_tilt=np.where(tilted, _TILT, 0.5),
        is_rushed=rushed,
        is_position_biased=strongly_biased | tilted,
        activity=rng.lognormal(0.0, _ACTIVITY_SIGMA, size=n),
        pool=pool,
        locale=locale,
        tenure_months=tenure,
        speed=speed,
    )


def _categorical(rng: np.random.Generator, probs: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.random(len(probs))[:, None]
    return np.minimum((draws > cumulative).sum(axis=1), probs.shape[1] - 1)


def split_votes(rng: np.random.Generator, total: int, low: int, high: int) -> npt.NDArray[np.int64]:
    """Votes per pair, each uniform on ``{low..high}``, adjusted by +-1 steps to sum to ``total``.

    When no split within the bounds exists (``total < low``, or ``low == high`` not dividing
    ``total``) some pairs fall below ``low``.
    """
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    most = total // low
    fewest = -(-total // high)
    if fewest <= most:
        n_pairs = int(np.clip(round(total / ((low + high) / 2)), fewest, most))
        floor = low
    else:
        n_pairs, floor = max(1, fewest), 1
    votes = rng.integers(low, high + 1, size=n_pairs)
    votes = np.clip(votes, floor, high)
    while (gap := total - int(votes.sum())) != 0:
        room = np.flatnonzero(votes < high) if gap > 0 else np.flatnonzero(votes > floor)
        step = rng.choice(room, size=min(abs(gap), len(room)), replace=False)
        votes[step] += 1 if gap > 0 else -1
    return votes


def assign_reviewers(
    rng: np.random.Generator, votes: npt.NDArray[np.int64], activity: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(pair, reviewer)`` per vote: distinct reviewers within a pair, drawn by activity."""
    weights = activity / activity.sum()
    n_reviewers = len(activity)
    pair = np.repeat(np.arange(len(votes)), votes)
    reviewer = rng.choice(n_reviewers, size=len(pair), p=weights)
    for _ in range(60):
        duplicate = _duplicates(pair, reviewer)
        if len(duplicate) == 0:
            return pair, reviewer
        reviewer[duplicate] = rng.choice(n_reviewers, size=len(duplicate), p=weights)
    for index in _duplicates(pair, reviewer):  # rare: crowded pairs among few reviewers
        taken = set(reviewer[pair == pair[index]].tolist())
        free = np.array([r for r in range(n_reviewers) if r not in taken])
        reviewer[index] = rng.choice(free, p=weights[free] / weights[free].sum())
    return pair, reviewer


def _duplicates(pair: npt.NDArray[np.int64], reviewer: npt.NDArray[np.int64]) -> npt.NDArray:
    """Find votes whose reviewer already judged the same pair (all but the first)."""
    order = np.lexsort((reviewer, pair))
    same = (pair[order][1:] == pair[order][:-1]) & (reviewer[order][1:] == reviewer[order][:-1])
    return order[1:][same]


def sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Compute the logistic function ``1 / (1 + exp(-x))`` (via tanh, overflow-free)."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass
class Judgments:
    """Simulated judgments, one entry per comparison."""

    careful: npt.NDArray[np.bool_]
    outcome: npt.NDArray[np.int64]  # +1 response_1, -1 response_2, 0 tie
    eta: npt.NDArray[np.float64]  # careful-judgment logit (also drawn for lapses)


def judge(
    rng: np.random.Generator,
    margin: npt.NDArray[np.float64],
    first_is_1: npt.NDArray[np.bool_],
    lapse_rate: npt.NDArray[np.float64],
    position_bias: npt.NDArray[np.float64],
    lapse_tilt: npt.NDArray[np.float64],
    tie_threshold: float,
    longer_is_1: npt.NDArray[np.bool_] | None = None,
    length_lean: float = 0.0,
) -> Judgments:
    """Simulate each judgment from its reviewer-school margin and reviewer parameters; with
    ``length_lean`` != 0, a share ``|length_lean|`` of lapses picks the longer reply
    (``longer_is_1``), or the shorter one when ``length_lean`` < 0."""
    n = len(margin)
    s = np.where(first_is_1, 1, -1)
    careful = rng.random(n) >= lapse_rate
    eta = margin + position_bias * s
    p1 = sigmoid(eta - tie_threshold)
    p2 = sigmoid(-eta - tie_threshold)
    u = rng.random(n)
    careful_outcome = np.where(u < p1, 1, np.where(u >= 1.0 - p2, -1, 0))
    first_wins = rng.random(n) < lapse_tilt
    lapse_outcome = np.where(first_wins, s, -s)
    if length_lean != 0.0 and longer_is_1 is not None:
        # drawn only when asked for, so worlds without the lean keep their random stream
        leans = rng.random(n) < abs(length_lean)
        picks_1 = longer_is_1 if length_lean > 0 else ~longer_is_1
        lapse_outcome = np.where(leans, np.where(picks_1, 1, -1), lapse_outcome)
    outcome = np.where(careful, careful_outcome, lapse_outcome).astype(np.int64)
    return Judgments(careful=careful, outcome=outcome, eta=eta)
