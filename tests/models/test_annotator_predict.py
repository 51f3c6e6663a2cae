"""Held-out prediction of individual judgments (``AnnotatorModel.predict_proba``).

On a small simulated world (the model's own generator): predictions for held-out judgments are
proper probabilities, beat the smoothed per-pair vote frequency in log loss, and carry the
reviewer's position bias.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.synthetic import (
    SyntheticConfig,
    SyntheticWorld,
    model_frame_from_world,
)
from dissensus.models.annotator.synthetic import simulate as simulate_synthetic

CLASSES = (1, 0, -1)  # columns of predict_proba


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    col = np.select([y == 1, y == 0], [0, 1], 2)
    return float(-np.mean(np.log(np.clip(p[np.arange(y.size), col], 1e-12, 1.0))))


def _pair_frequency(train: pl.DataFrame, test: pl.DataFrame, alpha: float = 1.0) -> np.ndarray:
    counts = train.group_by("pair_id").agg(
        [(pl.col("outcome") == c).sum().alias(f"n{i}") for i, c in enumerate(CLASSES)]
    )
    joined = test.select("pair_id").join(counts, on="pair_id", how="left").fill_null(0)
    n = joined.select("n0", "n1", "n2").to_numpy().astype(float) + alpha
    return n / n.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return simulate_synthetic(
        SyntheticConfig(n_reviewers=50, n_pairs=500, votes_per_pair=(5, 9),
                        position_biased_share=0.15, seed=4)
    )


@pytest.fixture(scope="module")
def split(world: SyntheticWorld) -> tuple[AnnotatorModel, pl.DataFrame, pl.DataFrame]:
    frame = model_frame_from_world(world.judgments, world.pairs)
    test_mask = np.random.default_rng(0).random(frame.height) < 0.15
    train = frame.filter(pl.Series(~test_mask))
    test = frame.filter(pl.Series(test_mask))
    model = AnnotatorModel(n_schools=2, seed=1).fit(train)
    return model, train, test


def test_predictions_are_probabilities(split) -> None:  # type: ignore[no-untyped-def]
    model, _, test = split
    p = model.predict_proba(test)
    assert p.shape == (test.height, 3)
    assert np.all(p >= 0) and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)


def test_beats_pair_frequency(split) -> None:  # type: ignore[no-untyped-def]
    model, train, test = split
    y = test["outcome"].to_numpy()
    ours = _log_loss(model.predict_proba(test), y)
    freq = _log_loss(_pair_frequency(train, test), y)
    assert ours < freq - 0.02, (ours, freq)


def test_unknown_reviewer_and_pair_fall_back(split) -> None:  # type: ignore[no-untyped-def]
    model, _, test = split
    new = test.head(4).with_columns(
        reviewer_id=pl.Series(["nobody", "nobody", test["reviewer_id"][2], "nobody"]),
        pair_id=pl.Series([test["pair_id"][0], "nowhere", "nowhere", "nowhere"]),
        first_shown=pl.Series([1, 1, 1, None], dtype=pl.Int8),
    )
    p = model.predict_proba(new)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    # nothing known and no display order: symmetric in response 1 / 2
    assert abs(p[3, 0] - p[3, 2]) < 1e-9


def test_position_bias_shows(world: SyntheticWorld, split) -> None:  # type: ignore[no-untyped-def]
    model, train, _ = split
    truth = world.reviewers.join(
        model.reviewer_estimates_.select("reviewer_id", "n_comparisons"), on="reviewer_id"
    ).filter(pl.col("n_comparisons") >= 20, ~pl.col("is_rushed"))
    biased = truth.sort("position_bias", descending=True)["reviewer_id"][0]
    plain = truth.filter(pl.col("position_bias").abs() < 0.1).sort(
        "n_comparisons", descending=True)["reviewer_id"][0]
    pairs = train["pair_id"].unique().sort().head(200)

    def p_first(reviewer: str) -> float:
        rows = []
        for first in (1, 2):
            rows.append(pl.DataFrame({"reviewer_id": reviewer, "pair_id": pairs,
                                      "first_shown": first}).cast({"first_shown": pl.Int8}))
        frame = pl.concat(rows)
        p = model.predict_proba(frame)
        first_col = np.where(frame["first_shown"].to_numpy() == 1, 0, 2)
        return float(p[np.arange(frame.height), first_col].mean())

    assert p_first(biased) > p_first(plain) + 0.05


def test_per_reviewer_tie_thresholds_follow_each_reviewers_ties() -> None:
    world = simulate_synthetic(SyntheticConfig(n_reviewers=40, n_pairs=160, seed=2))
    frame = model_frame_from_world(world.judgments, world.pairs)
    # half the reviewers turn some of their decided votes into ties: a habit, not a view
    rng = np.random.default_rng(0)
    tie_lovers = set(sorted(frame["reviewer_id"].unique().to_list())[::2])
    habit = frame["reviewer_id"].is_in(list(tie_lovers)).to_numpy() & (
        rng.random(frame.height) < 0.3)
    frame = frame.with_columns(outcome=pl.when(pl.Series(habit)).then(0)
                               .otherwise(pl.col("outcome")))
    model = AnnotatorModel(n_schools=1, tie_per_reviewer=True, seed=0).fit(frame)
    assert model.fit_summary_["diagnostics"]["converged"]
    state = model.result_.grid_state
    tau = dict(zip(model.reviewer_estimates_["reviewer_id"].to_list(), state.reviewer_tau(),
                   strict=True))
    lovers = np.mean([tau[r] for r in tie_lovers])
    others = np.mean([t for r, t in tau.items() if r not in tie_lovers])
    assert lovers > others + 0.2
    # and the predicted tie probability follows the reviewer, on the same pair
    one_pair = frame.head(1)
    lover, other = sorted(tie_lovers)[0], next(r for r in tau if r not in tie_lovers)
    p_lover = model.predict_proba(one_pair.with_columns(reviewer_id=pl.lit(lover)))[0, 1]
    p_other = model.predict_proba(one_pair.with_columns(reviewer_id=pl.lit(other)))[0, 1]
    assert p_lover > p_other
    shared = AnnotatorModel(n_schools=1, seed=0).fit(frame)
    assert np.ptp(shared.result_.grid_state.reviewer_tau()) == 0
