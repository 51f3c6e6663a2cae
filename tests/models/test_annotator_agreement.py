"""A reviewer's agreement: the fit's prediction updated by the reviewer's own record."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dissensus.models.annotator.predict import agreement_prior_votes, posterior_agreement


def test_a_record_below_a_coin_flip_ranks_below_one_at_a_coin_flip() -> None:
    # two heavy lapsers the model cannot tell apart (both predicted 0.52); one names the
    # consensus on 35 of 100 votes, the other on 50: only the record separates them
    rng = np.random.default_rng(0)
    predicted = np.r_[rng.uniform(0.7, 0.95, 40), 0.52, 0.52]
    n = np.full(42, 100.0)
    k = np.r_[rng.binomial(100, predicted[:40]), 35, 50].astype(float)
    agreement, low, high = posterior_agreement(predicted, k, n)
    assert agreement[40] < agreement[41] < 0.55
    assert np.argmin(agreement) == 40
    assert low[40] < agreement[40] < high[40] and high[40] < high[41]


def test_the_prior_weighs_more_where_the_model_foresees_the_records() -> None:
    rng = np.random.default_rng(1)
    predicted = rng.uniform(0.55, 0.95, 300)
    n = np.full(300, 60.0)
    foreseen = rng.binomial(60, predicted).astype(float)
    # records that spread far beyond the prediction: each reviewer's true rate drawn at random
    spread = rng.binomial(60, rng.uniform(0.2, 1.0, 300)).astype(float)
    assert agreement_prior_votes(predicted, foreseen, n) > 10 * agreement_prior_votes(
        predicted, spread, n)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 0.99), st.integers(0, 200), st.floats(0, 1)),
                min_size=1, max_size=30))
def test_agreement_lies_between_the_prediction_and_the_record(
        rows: list[tuple[float, int, float]]) -> None:
    predicted = np.array([r[0] for r in rows])
    n = np.array([float(r[1]) for r in rows])
    k = np.round(n * np.array([r[2] for r in rows]))
    agreement, lower, upper = posterior_agreement(predicted, k, n)
    share = np.where(n > 0, k / np.maximum(n, 1), predicted)
    low, high = np.minimum(predicted, share), np.maximum(predicted, share)
    assert np.all((agreement >= low - 1e-9) & (agreement <= high + 1e-9))
    assert np.all(agreement[n == 0] == predicted[n == 0])
    assert np.all((lower <= agreement + 1e-9) & (agreement <= upper + 1e-9))
    assert np.all((lower >= 0) & (upper <= 1))


def test_the_agreement_interval_narrows_as_the_record_grows() -> None:
    predicted = np.array([0.8, 0.8, 0.8] + [0.7] * 50)
    n = np.array([4.0, 40.0, 400.0] + [30.0] * 50)
    k = np.round(n * np.r_[0.6, 0.6, 0.6, np.full(50, 0.7)])
    _, low, high = posterior_agreement(predicted, k, n, mass=0.9)
    width = high - low
    assert width[0] > width[1] > width[2] > 0
