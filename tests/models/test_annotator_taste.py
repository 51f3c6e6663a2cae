"""Individual taste is not a lapse: a flag must stand when the reviewer may have a taste of their
own for a reply property (see models.annotator.taste)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissensus.models.annotator import AnnotatorConfig, AnnotatorModel
from dissensus.models.annotator.data import encode_frame
from dissensus.models.annotator.evidence import lapse_flagged
from dissensus.models.annotator.grid_em import GridEM
from dissensus.models.annotator.likelihood import careful_logp, careful_prob_rows
from dissensus.models.annotator.summarise import summarise_grid
from dissensus.models.annotator.taste import (
    flags_robust_to_taste,
    lapse_with_taste,
    pool_tastes,
    reviewer_taste_loglik,
    taste_log_prior,
    taste_values,
)
from dissensus.models.annotator.world_scores import verdict_scores
from dissensus.models.annotator.worlds import WORLDS, simulate_world

FAST = AnnotatorConfig(max_iter=60)


def _ids(world, column: str) -> set[str]:
    return set(world.reviewers.filter(pl.col(column))["reviewer_id"])


def test_a_taste_for_longer_replies_is_not_read_as_lapses(lapse_flagged_ids) -> None:
    # the hardest confound: rushed reviewers whose lapses lean toward the longer reply, beside
    # careful reviewers with a taste for longer replies; the taste wins close pairs and rarely
    # clear ones, the lapses do not care how clear a pair is
    world = simulate_world(WORLDS["taste_or_lapse"], seed=0)
    tasters, rushed = _ids(world, "length_taste"), _ids(world, "is_rushed")
    frame = world.model_frame()
    before = AnnotatorModel(FAST.model_copy(update={"taste_check": False})).fit(frame)
    model = AnnotatorModel(FAST).fit(frame)
    assert len(lapse_flagged_ids(before) & tasters) >= 3  # without the check a taste is lapses
    assert not lapse_flagged_ids(model) & tasters
    assert lapse_flagged_ids(model) & rushed == lapse_flagged_ids(before) & rushed
    scores = verdict_scores(world, model.reviewer_estimates_, model.n_schools_)
    assert scores["rushed_recall"] >= 0.3 and scores["careful_flagged_n"] == 0
    diagnostics = model.fit_summary_["diagnostics"]
    readings = diagnostics["taste_readings"]
    assert readings and all(r["cue"] == "longer" and r["taste"] > 0.5 for r in readings)
    ids = model.reviewer_estimates_["reviewer_id"]
    assert {ids[r["reviewer"]] for r in readings} <= tasters
    leans = model.reviewer_estimates_["lean"]
    assert all("a taste for longer replies" in leans[r["reviewer"]] for r in readings)
    assert diagnostics["taste_prior"]["longer"]["share"] > 0
    assert any("taste of their own for longer replies" in w for w in diagnostics["warnings"])
    assert any("taste of their own" in n for n in diagnostics["verdict_notes"])


def test_a_pool_without_tastes_leaves_no_room_to_explain_lapses_away(lapse_flagged_ids) -> None:
    # lapses lean toward the longer reply and nobody has a taste: the pool's votes must not
    # learn a taste prior that clears the rushed (recall stays where the fit put it)
    world = simulate_world(WORLDS["lapse_longer"], seed=1)
    frame = world.model_frame()
    before = AnnotatorModel(FAST.model_copy(update={"taste_check": False})).fit(frame)
    model = AnnotatorModel(FAST).fit(frame)
    assert lapse_flagged_ids(model) == lapse_flagged_ids(before)
    assert len(lapse_flagged_ids(model)) >= 5
    prior = model.fit_summary_["diagnostics"]["taste_prior"]["longer"]
    assert prior["share"] <= 0.05


def test_no_taste_reads_the_votes_as_the_fit_does() -> None:
    # with no taste the reading must give back the fit's own lapse posterior: the cavity
    # beliefs and the per-vote likelihood are the fit's, only the taste is new
    world = simulate_world(replace(WORLDS["lapse_longer"], n_pairs=300), seed=1)
    enc = encode_frame(world.model_frame())
    state = GridEM(enc.judgments, 1, FAST).run()
    d = enc.judgments
    lapse = state.lapse_marginal()
    for r in np.argsort(-np.bincount(d.reviewer, minlength=d.n_reviewers))[:6]:
        table = reviewer_taste_loglik(state, d, int(r), d.lapse_cues)
        own = lapse[r] / lapse[r].sum()
        for c in range(table.shape[0]):
            read, _ = lapse_with_taste(table[c], state, 0.0, 1.0)
            assert np.abs(read - own).sum() < 0.1
    priors, tables = pool_tastes(state, d, d.lapse_cues)
    assert priors.shape == (d.lapse_cues.shape[1], 2) and tables


def test_only_a_taste_clears_a_flag_the_grid_reading_would_raise_too() -> None:
    # a sampled fit's flags rest on its draws, the taste reading on the grid EM: a reviewer
    # flagged by the draws whom the grid reading does not flag even with no taste must keep the
    # flag (withdrawing it would be the two fits disagreeing, not a taste)
    world = simulate_world(WORLDS["tastes"], seed=0)
    enc = encode_frame(world.model_frame())
    state = GridEM(enc.judgments, 1, FAST).run()
    result = summarise_grid(state, enc, FAST, 0.0)
    flagged = lapse_flagged(result, FAST)
    plain = set(world.reviewers.filter(~pl.col("is_rushed") & ~pl.col("length_taste"))
                ["reviewer_id"])
    careful = np.array([rid in plain for rid in enc.reviewer_ids])
    extra = int(np.flatnonzero(careful & ~flagged)[0])
    result.p_unreliable[extra], result.lapse_evidence[extra] = 1.0, 1e6  # as a sampled fit might
    notes = flags_robust_to_taste(result, state, enc.judgments, FAST, enc.cues.names)
    readings = result.diagnostics["taste_readings"]
    assert result.diagnostics["taste_prior"]["longer"]["share"] > 0  # the check did read
    assert extra not in {r["reviewer"] for r in readings}
    assert lapse_flagged(result, FAST)[extra]
    assert bool(notes) == bool(readings)


@pytest.mark.slow
def test_a_nuts_fit_gets_the_taste_check_and_keeps_its_rushed_flags(lapse_flagged_ids) -> None:
    world = simulate_world(WORLDS["tastes"], seed=0)
    frame = world.model_frame()
    nuts = AnnotatorConfig(method="nuts", n_schools=1, draws=300, tune=300, chains=2)
    before = AnnotatorModel(nuts.model_copy(update={"taste_check": False})).fit(frame)
    model = AnnotatorModel(nuts).fit(frame)
    rushed = _ids(world, "is_rushed")
    assert len(lapse_flagged_ids(before) & rushed) >= 3
    assert lapse_flagged_ids(model) & rushed == lapse_flagged_ids(before) & rushed
    diagnostics = model.fit_summary_["diagnostics"]
    assert diagnostics["taste_prior"]["longer"]["share"] > 0
    assert diagnostics["taste_check_seconds"] is not None


def test_the_taste_prior_is_no_taste_or_a_normalised_symmetric_slab() -> None:
    t = taste_values()
    assert np.allclose(t, -t[::-1]) and 0.0 in t
    none = taste_log_prior(0.0, 1.0)
    assert np.isclose(np.exp(none).sum(), 1.0) and np.isclose(np.exp(none[t == 0.0]), 1.0)
    some = taste_log_prior(0.2, 1.0)
    assert np.isclose(np.exp(some).sum(), 1.0) and np.allclose(some, some[::-1])
    assert np.exp(some[t == 0.0]) > 0.8


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([-1, 0, 1]), min_size=1, max_size=12),
       st.floats(0.01, 3.0), st.integers(0, 2**31 - 1))
def test_careful_prob_rows_is_the_ordered_logit(y: list[int], tau: float, seed: int) -> None:
    eta = np.random.default_rng(seed).normal(0.0, 3.0, (len(y), 4, 3))
    yy = np.asarray(y)
    expected = np.exp(careful_logp(yy[:, None, None], eta, tau))
    assert np.allclose(careful_prob_rows(yy, eta, tau), np.maximum(expected, 1e-300))
