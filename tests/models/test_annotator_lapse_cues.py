"""Lapses that lean toward a reply property (the longer reply, one model's reply)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from dissensus.models.annotator import AnnotatorConfig, AnnotatorModel
from dissensus.models.annotator.lapse_cues import (
    CueSpec,
    choose_cues,
    cue_matrix,
    describe_lean,
    lean_score_test,
    lean_step,
)
from dissensus.models.annotator.world_scores import verdict_scores
from dissensus.models.annotator.worlds import WORLDS, simulate_world

FAST = AnnotatorConfig(max_iter=60)


def _frame(l1: list[float | None], l2: list[float | None], m1: list[str | None],
           m2: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({"response_1_length": l1, "response_2_length": l2,
                         "response_1_model": m1, "response_2_model": m2},
                        schema={"response_1_length": pl.Float64, "response_2_length": pl.Float64,
                                "response_1_model": pl.String, "response_2_model": pl.String})


def test_cues_read_clear_length_differences_and_models() -> None:
    # four rows to read, then twelve pairs of equal-length free replies (no cue)
    free = [200.0 + i for i in range(12)]
    frame = _frame([100, 100, 300, None, *free], [300, 105, 100, 50, *free],
                   ["a", "a", "b", None, *["a"] * 12], ["b", "a", "a", "a", *["a"] * 12])
    spec = choose_cues(frame)
    # two models: one cue says everything
    assert spec == CueSpec(length=True, models=("a",))
    x = cue_matrix(spec, frame)
    assert x is not None
    # within 15% is the same length; an unknown length gives no cue
    np.testing.assert_array_equal(x[:4, 0], [-1, 0, 1, 0])
    np.testing.assert_array_equal(x[:4, 1], [1, 0, -1, -1])
    assert not x[4:].any()
    # the spec survives a round trip, and a frame without the columns gives zeros
    assert CueSpec.from_json(spec.to_json()) == spec
    bare = cue_matrix(spec, pl.DataFrame({"x": [1, 2]}))
    assert bare is not None and not bare.any()
    assert cue_matrix(CueSpec(), frame) is None


def test_the_pool_lean_is_learned_from_lapse_weighted_votes() -> None:
    rng = np.random.default_rng(0)
    n, r = 4000, 20
    x = rng.choice([-1.0, 0.0, 1.0], size=(n, 1))
    lapse = rng.random(n)
    # lapses pick the cued reply 85% of the time, careful votes ignore it
    toward = rng.random(n) < 0.85
    y = np.where(lapse > 0.5, np.where(toward, 1, -1) * np.where(x[:, 0] == 0, 1, x[:, 0]),
                 rng.choice([-1, 1], size=n)).astype(np.int64)
    y = np.where((lapse > 0.5) & (x[:, 0] == 0), rng.choice([-1, 1], size=n), y)
    reviewer = rng.integers(0, r, n)
    lean, pool = np.zeros((r, 1)), np.zeros(1)
    for _ in range(20):
        lean, pool = lean_step(x, y, reviewer, r, (lapse > 0.5).astype(float), np.zeros(n),
                               lean, pool, None)
    assert 1.3 < pool[0] < 2.1  # logit(0.85) = 1.73
    assert np.allclose(lean, pool)  # by default every reviewer leans as the pool does
    assert "the longer reply (picked in 8" in describe_lean({"longer": float(pool[0])})
    assert describe_lean({"longer": 0.1}) == ""


def test_the_score_test_sees_a_lean_and_passes_coin_flips() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    x = rng.choice([-1.0, 0.0, 1.0], size=(n, 2))
    lapse = (rng.random(n) < 0.3).astype(float)
    s = rng.choice([-1, 1], size=n)
    gamma = np.full(n, 0.5)
    coin = rng.choice([-1, 1], size=n)
    leaning = np.where((lapse > 0) & (x[:, 0] != 0) & (rng.random(n) < 0.8),
                       x[:, 0], coin).astype(np.int64)
    stat, p = lean_score_test(x, leaning, s, lapse, gamma)
    assert p < 1e-6 and stat > 30
    stat, p = lean_score_test(x, coin.astype(np.int64), s, lapse, gamma)
    assert p > 0.05 and stat < 6
    # where no judgment looks like a lapse there is nothing to test: no lean is claimed
    assert lean_score_test(x, leaning, s, np.zeros(n), gamma)[1] == 1.0


@pytest.fixture(scope="module")
def lapse_longer():
    """A world whose rushed reviewers' lapses pick the longer reply 85% of the time, fitted with
    and without lapse cues."""
    world = simulate_world(replace(WORLDS["lapse_longer"], n_pairs=500), seed=3)
    with_cues = AnnotatorModel(FAST).fit(world.model_frame())
    without = AnnotatorModel(FAST.model_copy(update={"lapse_cues": False})).fit(
        world.model_frame())
    return world, with_cues, without


def test_lean_toward_the_longer_reply_ranks_rushed_reviewers_better(lapse_longer) -> None:
    world, with_cues, without = lapse_longer
    lean = with_cues.fit_summary_["diagnostics"]["lapse_lean"]
    assert lean["longer"] > 0.5
    assert without.fit_summary_["diagnostics"]["lapse_lean"] == {}
    s_cues = verdict_scores(world, with_cues.reviewer_estimates_, with_cues.n_schools_)
    s_plain = verdict_scores(world, without.reviewer_estimates_, without.n_schools_)
    assert s_cues["bottom_k_precision"] > s_plain["bottom_k_precision"]
    assert s_cues["careful_flagged_share"] <= 0.05
    notes = " ".join(with_cues.fit_summary_["diagnostics"]["verdict_notes"])
    assert "lean toward the longer reply" in notes


def test_a_saved_fit_predicts_with_its_lean(lapse_longer, tmp_path) -> None:
    world, model, _ = lapse_longer
    frame = world.model_frame()
    assert model.cues_.size > 0 and model.predictive_.lean is not None
    model.save(tmp_path / "fit")
    loaded = AnnotatorModel.load(tmp_path / "fit")
    assert loaded.cues_ == model.cues_
    rows = frame.head(50)
    np.testing.assert_allclose(loaded.predict_proba(rows), model.predict_proba(rows))
    # the lean acts: the same votes without reply properties are predicted differently
    bare = rows.drop("response_1_length", "response_2_length", "response_1_model",
                     "response_2_model")
    assert not np.allclose(model.predict_proba(bare), model.predict_proba(rows))


def test_a_lean_that_does_not_predict_better_is_not_kept() -> None:
    # the model's own story: lapses are coin flips tilted to the first shown; replies have
    # lengths and models, but nothing leans on them
    world = simulate_world(replace(WORLDS["story"], n_pairs=300), seed=2)
    model = AnnotatorModel(FAST).fit(world.model_frame())
    assert model.fit_summary_["diagnostics"]["lapse_lean"] == {}
    assert model.predictive_.lean is None


def test_departures_name_a_taste_and_nothing_on_careful_reviewers() -> None:
    world = simulate_world("tastes", seed=0)
    model = AnnotatorModel(FAST).fit(world.model_frame())
    table = world.reviewers.join(model.reviewer_estimates_.select("reviewer_id", "lean"),
                                 on="reviewer_id")
    plain = table.filter(~pl.col("length_taste") & ~pl.col("is_rushed")
                         & ~pl.col("is_position_biased"))
    assert plain["lean"].null_count() == plain.height  # careful, no taste: nothing named
    tasters = table.filter(pl.col("length_taste"))["lean"].drop_nulls().to_list()
    assert any("favour the longer reply in" in text for text in tasters)
    biased = table.filter(pl.col("is_position_biased"))["lean"].drop_nulls().to_list()
    assert any("the reply shown first" in text for text in biased)


def test_a_label_task_gets_no_length_cue() -> None:
    # every pair offers the same two fixed replies: "longer" would name a label
    yes, no = "Yes, the text entails it.", "No, the text does not entail it."
    frame = _frame([len(yes), len(no)] * 50, [len(no), len(yes)] * 50, [None] * 100, [None] * 100)
    assert choose_cues(frame) == CueSpec()
