"""What the other reviewers on the same pairs predict: the rates the audit's checks hold a
reviewer to.

A check that holds every reviewer to the pool's rate (or to one half) blames a reviewer for the
pairs they were given: close pairs draw "tie" and split answers from careful reviewers too, and
where the display order follows quality every careful reviewer picks the first-shown reply
more often than half the time. So each of a reviewer's votes is held to what the *other*
reviewers did on that pair -- their share of each answer, with the reviewer's own votes
(repeats included) left out, shrunk toward a prior by ``PRIOR_VOTES`` votes' worth (3-8 votes a
pair leave 2-7 others: a share of so few is shrunk, not trusted; a pair nobody else judged
gives the prior) -- and the reviewer's expected rate is the mean over their votes. The same
leave-one-out idea as the leave-one-out agreement of :mod:`.audit_reliability`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dissensus.analytics.audit_votes import Votes

FloatArray = NDArray[np.float64]
PRIOR_VOTES = 2.0
"""Votes' worth of the prior mixed into the others' share of an answer on a pair."""


def others_share(votes: Votes, hit: np.ndarray, counted: np.ndarray,
                 prior: float) -> FloatArray:
    """Per vote: among the *other* reviewers' ``counted`` votes on the same pair, the share
    that are ``hit`` (boolean arrays over the votes), shrunk toward ``prior``."""
    pair, own = votes.p, votes.reviewer_pair
    hit_f = (hit & counted).astype(np.float64)
    counted_f = counted.astype(np.float64)
    hits = (np.bincount(pair, hit_f, minlength=votes.n_pairs)[pair]
            - np.bincount(own, hit_f)[own])
    total = (np.bincount(pair, counted_f, minlength=votes.n_pairs)[pair]
             - np.bincount(own, counted_f)[own])
    return (hits + PRIOR_VOTES * prior) / (total + PRIOR_VOTES)


def reviewer_mean(votes: Votes, per_vote: FloatArray, used: np.ndarray,
                  default: float) -> FloatArray:
    """Each reviewer's mean of ``per_vote`` over their ``used`` votes (``default`` with none)."""
    w = used.astype(np.float64)
    n = np.bincount(votes.r, w, minlength=votes.n_reviewers)
    total = np.bincount(votes.r, w * per_vote, minlength=votes.n_reviewers)
    return np.where(n > 0, total / np.maximum(n, 1), default)


def expected_tie_rate(votes: Votes, is_tie: np.ndarray, pool: float) -> FloatArray:
    """Each reviewer's mean, over their votes, of the others' tie share on the pair (prior: the
    pool's tie rate ``pool``)."""
    every = np.ones(is_tie.shape, dtype=bool)
    return reviewer_mean(votes, others_share(votes, is_tie, every, pool), every, pool)


def expected_first_rate(votes: Votes, o: np.ndarray, fs: np.ndarray,
                        decided: np.ndarray) -> FloatArray:
    """Each reviewer's mean, over their ``decided`` votes, of the chance the others' picks give
    the reply they saw first: the others' share choosing that reply among their decided votes
    on the pair, whatever order those saw (prior: one half)."""
    share_1 = others_share(votes, o == 1, decided, 0.5)
    chance = np.where(fs == 1, share_1, 1.0 - share_1)
    return reviewer_mean(votes, chance, decided, 0.5)


def expected_consistency(votes: Votes, o: np.ndarray, repeat: np.ndarray) -> FloatArray:
    """Each reviewer's mean, over their ``repeat`` votes, of ``sum_y p_y^2``: the chance of the
    same answer twice if each answer were drawn as the others answer the pair (win / tie /
    loss, prior: the pool's answers); 1 for a reviewer with no repeats."""
    y = np.nan_to_num(o, nan=0.0).astype(np.int64)
    every = np.ones(y.shape, dtype=bool)
    same = np.zeros(y.shape)
    for answer in (-1, 0, 1):
        hit = y == answer
        p = others_share(votes, hit, every, float(hit.mean()) if hit.size else 0.0)
        same += p * p
    return reviewer_mean(votes, same, repeat, 1.0)
