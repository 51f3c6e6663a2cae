"""Null tests: no schools -> K = 1 and no pluralism; no rushed reviewers -> nobody flagged."""

from __future__ import annotations

import polars as pl
import pytest

from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.warehouse.demo import WorldConfig, simulate_world


@pytest.fixture(scope="module")
def one_school() -> tuple[AnnotatorModel, object]:
    world = simulate_world(WorldConfig(n_comparisons=3000, n_schools=1, seed=0))
    frame = model_frame_from_world(world.judgments, world.pairs)
    return AnnotatorModel(n_schools="auto").fit(frame), world


def test_one_school_world_chooses_k1(one_school) -> None:  # type: ignore[no-untyped-def]
    model, _ = one_school
    assert model.n_schools_ == 1
    table = model.fit_summary_["diagnostics"]["loo_table"]
    assert [row["n_schools"] for row in table] == [1.0, 2.0]  # K = 3 skipped once 2 lost
    assert [row["chosen"] for row in table] == [True, False]


def test_one_school_world_has_no_pluralism(one_school) -> None:  # type: ignore[no-untyped-def]
    model, _ = one_school
    pairs = model.pair_estimates_
    assert (pairs["verdict"] == "pluralism").sum() == 0
    assert pairs["pluralism_share"].max() == 0.0
    weights = model.comparison_weights_["school_weights"].list.len()
    assert (weights == 1).all()


def test_no_rushed_reviewers_means_no_careful_flags() -> None:
    world = simulate_world(WorldConfig(n_comparisons=3000, rushed_share=0.0, seed=1))
    frame = model_frame_from_world(world.judgments, world.pairs)
    model = AnnotatorModel(n_schools=2).fit(frame)
    table = model.reviewer_estimates_.join(
        world.reviewers.select("reviewer_id", "is_position_biased"), on="reviewer_id"
    )
    lapse_flags = table.filter(pl.col("flag_reason").str.contains("lapse rate").fill_null(False))
    assert lapse_flags.height <= 1  # at most one false alarm among ~75 careful reviewers
    bias_only = table.filter(pl.col("flagged") & ~pl.col("is_position_biased"))
    assert bias_only.height <= 1
    assert table["reliability"].median() > 0.9
