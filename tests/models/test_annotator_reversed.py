"""The reversed-votes evidence: its Bayes factor and the judgments left without reversed
reviewers (see models/annotator/reversed.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from dissensus.models.annotator.judgments import Judgments
from dissensus.models.annotator.reversed import ReversedEvidence, without_reviewers


def _evidence(against: int, clear: int) -> float:
    """The Bayes factor by numerical integration of the two uniform priors."""
    up = integrate.quad(lambda t: t**against * (1 - t) ** (clear - against), 0.5, 1.0)[0]
    low = integrate.quad(lambda t: t**against * (1 - t) ** (clear - against), 0.0, 0.5)[0]
    return up / low


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.data())
def test_the_bayes_factor_is_the_ratio_of_the_two_uniform_priors(clear: int, data) -> None:
    against = data.draw(st.integers(0, clear))
    from scipy.special import betainc

    below = betainc(against + 1.0, clear - against + 1.0, 0.5)
    assert np.isclose((1 - below) / below, _evidence(against, clear), rtol=1e-6)


def test_a_coin_flip_is_not_reversed_and_a_mirror_is() -> None:
    evidence = ReversedEvidence(clear=np.array([40, 40, 8]), against=np.array([20, 34, 8]),
                                bayes_factor=np.array([_evidence(20, 40), _evidence(34, 40),
                                                       _evidence(8, 8)]))
    assert evidence.bayes_factor[0] < 2
    # 8 of 8 is strong evidence, but too few votes to judge a person by
    assert list(evidence.reversed(100.0, 10)) == [1]


def test_without_reviewers_drops_their_votes_and_the_pairs_left_empty() -> None:
    data = Judgments(reviewer=np.array([0, 1, 2, 2, 0, 1]), pair=np.array([0, 0, 1, 2, 3, 3]),
                     y=np.array([1, -1, 1, 0, 1, 1]), s=np.array([1, -1, 1, 1, -1, 1]),
                     n_reviewers=3, n_pairs=4)
    rest, kept = without_reviewers(data, np.array([2]))
    assert list(kept) == [0, 1]
    assert rest.n_pairs == 2 and rest.n == 4
    assert list(rest.pair) == [0, 0, 1, 1] and list(rest.y) == [1, -1, 1, 1]
