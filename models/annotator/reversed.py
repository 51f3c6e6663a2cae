"""Reviewers whose votes are reversed: they pick the reply the pool rejects.

A reviewer who swapped the buttons, or read the instructions backwards, votes against a clear
consensus on most pairs. Lapses cannot explain that: a careless vote is a coin flip, so it goes
against the consensus at most half the time. Left in the model, a few such reviewers agree with
each other on every pair and become a "school" of their own, rated careful, with pluralism
called where there is none (a world with three reversed reviewers among sixty: two schools,
the reversed three at reliability 0.92-0.95).

The evidence for reviewer ``r`` is read from the one-school fit: of their ``n`` non-tie votes
on clear pairs (consensus probability beyond ``0.5 +- CLEAR``), ``k`` go against the consensus.
With the rate ``theta`` of such votes uniform on ``(1/2, 1]`` ("reversed") against uniform on
``[0, 1/2]`` (careful or careless, however often)::

    BF = (1 - I_{1/2}(k + 1, n - k + 1)) / I_{1/2}(k + 1, n - k + 1)

``I`` the regularised incomplete beta function. A reviewer is reversed when ``BF >=
reversed_bayes_factor`` with at least ``reversed_min_votes`` such votes. Reversed is relative to
the pool: where most reviewers are reversed, the few others are the ones who stand out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import betainc

from .departures import clear_departures
from .grid_em import GridState
from .judgments import Judgments

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def consensus_departures(state: GridState, data: Judgments) -> tuple[NDArray, NDArray]:
    """``(clear, departs)`` per judgment under ``state``'s consensus: a non-tie vote on a clear
    pair, and such a vote that goes against the consensus."""
    margins = state.lattice.margins()[:, 0]
    p_first = state.pair_post @ ((margins > 0) + 0.5 * (margins == 0))
    return clear_departures(p_first[data.pair], data.y)


@dataclass(frozen=True)
class ReversedEvidence:
    """Per reviewer: clear-pair votes, those against the consensus, and the Bayes factor of
    "reversed" (see the module docstring)."""

    clear: IntArray
    against: IntArray
    bayes_factor: FloatArray

    @classmethod
    def of(cls, state: GridState, data: Judgments) -> ReversedEvidence:
        clear, departs = consensus_departures(state, data)
        n = np.bincount(data.reviewer, clear, data.n_reviewers).astype(np.int64)
        k = np.bincount(data.reviewer, departs, data.n_reviewers).astype(np.int64)
        below = betainc(k + 1.0, n - k + 1.0, 0.5)
        with np.errstate(divide="ignore"):
            bf = (1.0 - below) / np.maximum(below, 1e-300)
        return cls(n, k, bf)

    def reversed(self, bayes_factor: float, min_votes: int) -> IntArray:
        """Indices of the reviewers whose votes are reversed."""
        return np.flatnonzero((self.bayes_factor >= bayes_factor)
                              & (self.clear >= min_votes)).astype(np.int64)


def without_reviewers(data: Judgments, drop: IntArray) -> tuple[Judgments, IntArray]:
    """``data`` without the judgments of ``drop``; pairs left with no vote are dropped too.
    Returns the rest and, for each of its reviewers, the reviewer's index in ``data``."""
    gone = np.zeros(data.n_reviewers, bool)
    gone[drop] = True
    return data.subset(~gone[data.reviewer])
