"""Choosing K on a sample of pairs (large data), then fitting the chosen K on everything."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import adjusted_rand_score

from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.grid_em import GridEM
from dissensus.models.annotator.judgments import Judgments
from dissensus.models.annotator.selection import expand_state, initial_schools, sample_pairs
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.warehouse.demo import WorldConfig, simulate_world


def _judgments(seed: int = 0) -> Judgments:
    rng = np.random.default_rng(seed)
    pair = np.sort(rng.integers(0, 60, 400))
    return Judgments(reviewer=rng.integers(0, 25, 400), pair=pair,
                     y=rng.choice([-1, 0, 1], 400), s=rng.choice([-1, 1], 400),
                     n_reviewers=25, n_pairs=60)


def test_a_sample_keeps_whole_pairs_and_recodes_densely() -> None:
    data = _judgments()
    sample, reviewers = sample_pairs(data, 200, seed=1)
    assert 0 < sample.n < data.n and sample.n_pairs < data.n_pairs
    assert np.array_equal(np.unique(sample.pair), np.arange(sample.n_pairs))
    assert np.array_equal(np.unique(sample.reviewer), np.arange(sample.n_reviewers))
    # every vote of a kept pair is kept: the per-pair vote counts are the original ones
    counts = np.bincount(data.pair, minlength=data.n_pairs)
    kept = counts[counts > 0]
    assert set(np.bincount(sample.pair)) <= set(kept)
    assert int(np.bincount(sample.pair).sum()) == sample.n
    # reviewer codes map back to the original reviewers of those votes
    assert set(reviewers[sample.reviewer]) <= set(data.reviewer)


def test_expanding_a_sample_fit_fills_absent_reviewers_with_the_population() -> None:
    data = _judgments()
    sample, reviewers = sample_pairs(data, 150, seed=2)
    state = GridEM(sample, 2, AnnotatorConfig(max_iter=5)).run()
    full = expand_state(state, reviewers, data.n_reviewers)
    assert full.reviewer_post.shape[0] == data.n_reviewers and full.gamma.shape == (25,)
    np.testing.assert_allclose(full.reviewer_post[reviewers], state.reviewer_post)
    absent = np.setdiff1d(np.arange(25), reviewers)
    if absent.size:
        np.testing.assert_allclose(full.school_probs()[absent[0]],
                                   state.school_weights / state.school_weights.sum())
        assert full.gamma[absent[0]] == state.tilt_mean
    probs = initial_schools(full)
    assert np.all(probs > 0) and np.allclose(probs.sum(axis=1), 1)
    # the expanded state starts a fit on all the data
    GridEM(data, 2, AnnotatorConfig(max_iter=3)).run(school_init=probs, warm=full)


def test_auto_k_on_a_sample_still_finds_the_schools() -> None:
    world = simulate_world(WorldConfig(n_comparisons=6000, seed=3))
    frame = model_frame_from_world(world.judgments, world.pairs)
    model = AnnotatorModel(n_schools="auto", k_selection_max_comparisons=2500, seed=1).fit(frame)
    d = model.fit_summary_["diagnostics"]
    sample = d["k_selection_sample"]
    assert sample is not None and 1500 < sample["comparisons"] < 3500
    assert d["n_schools_chosen"] == 2
    assert [f["data"] for f in d["fits"]] == ["sample", "sample", "sample",
                                             "all, pooled responses"]
    table = model.reviewer_estimates_.join(
        world.reviewers.select("reviewer_id", "is_rushed", "school_index"), on="reviewer_id")
    assert table.height == frame["reviewer_id"].n_unique()
    careful = table.filter(~pl.col("is_rushed"))
    assert adjusted_rand_score(careful["school_index"], careful["school"]) >= 0.5
    assert model.comparison_weights_.height == frame.height
