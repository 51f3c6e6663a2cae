"""Recovery tests on a simulated demo world: the model must tell noise from pluralism.

They would fail if the model lost its ability to separate schools from noise: the one-school
(K = 1) fit of the same data is the foil, and it does flag careful minority reviewers.
"""

from __future__ import annotations

import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.warehouse.demo import WorldConfig, simulate_world


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return simulate_world(WorldConfig(n_comparisons=3000, seed=3))


@pytest.fixture(scope="module")
def fitted(world) -> tuple[AnnotatorModel, AnnotatorModel]:  # type: ignore[no-untyped-def]
    frame = model_frame_from_world(world.judgments, world.pairs)
    two = AnnotatorModel(n_schools=2, seed=1).fit(frame)
    one = AnnotatorModel(n_schools=1, seed=1).fit(frame)
    return two, one


def _reviewers(model: AnnotatorModel, world) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    truth = world.reviewers.select("reviewer_id", "is_rushed", "is_position_biased",
                                   "school_index")
    table = model.reviewer_estimates_.join(truth, on="reviewer_id")
    k = int(table["is_rushed"].sum())
    return table.sort("reliability").with_columns(bottom=pl.int_range(pl.len()) < k)


def _minority_gap(table: pl.DataFrame) -> float:
    careful = table.filter(~pl.col("is_rushed"))
    minority = careful.filter(pl.col("school_index") > 0)["bottom"].mean()
    majority = careful.filter(pl.col("school_index") == 0)["bottom"].mean()
    return float(minority - majority)  # type: ignore[operator]


def test_rushed_reviewers_get_the_lowest_reliability(fitted, world) -> None:  # type: ignore[no-untyped-def]
    table = _reviewers(fitted[0], world)
    auc = roc_auc_score(table["is_rushed"], -table["reliability"])
    assert auc >= 0.85
    assert table.filter("bottom")["is_rushed"].mean() >= 0.6  # precision at k
    rushed = table.filter("is_rushed")["reliability"].median()
    careful = table.filter(~pl.col("is_rushed"))["reliability"].median()
    assert rushed < careful - 0.15


def test_careful_minority_is_not_read_as_noise(fitted, world) -> None:  # type: ignore[no-untyped-def]
    two, one = fitted
    gap_two = _minority_gap(_reviewers(two, world))
    gap_one = _minority_gap(_reviewers(one, world))
    assert gap_two <= 0.06
    # the null model, which cannot represent a second view, does push the minority down
    assert gap_one >= gap_two + 0.05
    flagged = _reviewers(two, world).filter(~pl.col("is_rushed") & ~pl.col("is_position_biased"))
    assert flagged["flagged"].mean() <= 0.05


def test_contested_pairs_get_a_high_pluralism_share(fitted, world) -> None:  # type: ignore[no-untyped-def]
    pairs = fitted[0].pair_estimates_.join(world.pairs.select("pair_id", "contested"),
                                           on="pair_id")
    assert roc_auc_score(pairs["contested"], pairs["pluralism_share"]) >= 0.78
    contested = pairs.filter("contested")["pluralism_share"].mean()
    other = pairs.filter(~pl.col("contested"))["pluralism_share"].mean()
    assert contested > 2 * other
    called = pairs.filter(pl.col("verdict") == "pluralism")
    assert called.height > 0 and called["contested"].mean() >= 0.7


def test_schools_of_careful_reviewers_are_recovered(fitted, world) -> None:  # type: ignore[no-untyped-def]
    table = _reviewers(fitted[0], world).filter(~pl.col("is_rushed"))
    assert adjusted_rand_score(table["school_index"], table["school"]) >= 0.5
    busy = table.filter(pl.col("n_comparisons") >= 40)
    assert (busy["school_index"] == busy["school"]).mean() >= 0.85
    assert fitted[0].school_weights_[0] == pytest.approx(0.65, abs=0.12)


def test_intervals_cover_the_true_lapse_rates(fitted, world) -> None:  # type: ignore[no-untyped-def]
    table = fitted[0].reviewer_estimates_.join(
        world.reviewers.select("reviewer_id", "lapse_rate"), on="reviewer_id"
    ).filter(pl.col("n_comparisons") >= 5)
    truth = 1 - table["lapse_rate"]
    covered = ((truth >= table["reliability_low"]) & (truth <= table["reliability_high"])).mean()
    assert covered >= 0.8
    assert (table["reliability_low"] <= table["reliability"]).all()
    assert (table["reliability"] <= table["reliability_high"]).all()
