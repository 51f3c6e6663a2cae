"""Pooling consensus margins across pairs that share a response."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.annotator.data import encode_frame
from dissensus.models.annotator.errors import AnnotatorDataError
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.grid_em import GridEM
from dissensus.models.annotator.judgments import Judgments
from dissensus.models.annotator.pooling import ResponsePooling, consensus_moments
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.warehouse.demo import WorldConfig, simulate_world


def _bradley_terry_world(seed: int = 0) -> tuple[Judgments, np.ndarray]:
    """60 responses with qualities q, 300 pairs among them, 3 careful votes per pair."""
    rng = np.random.default_rng(seed)
    n_resp, n_pairs, votes = 60, 300, 3
    quality = rng.normal(0.0, 1.5, n_resp)
    a = rng.integers(0, n_resp, n_pairs)
    b = (a + rng.integers(1, n_resp, n_pairs)) % n_resp
    margin = quality[a] - quality[b] + rng.normal(0.0, 0.3, n_pairs)
    pair = np.repeat(np.arange(n_pairs), votes)
    s = rng.choice([-1, 1], pair.size)
    eta = margin[pair]
    tau = 0.3
    u = rng.random(pair.size)
    p1 = 1 / (1 + np.exp(-(eta - tau)))
    p2 = 1 / (1 + np.exp(eta + tau))
    y = np.where(u < p1, 1, np.where(u < p1 + p2, -1, 0))
    data = Judgments(reviewer=rng.integers(0, 20, pair.size), pair=pair, y=y, s=s,
                     n_reviewers=20, n_pairs=n_pairs,
                     pair_responses=np.stack([a, b], axis=1), n_responses=n_resp)
    return data, margin


def test_pooling_recovers_margins_that_few_votes_cannot() -> None:
    data, margin = _bradley_terry_world()
    errors = {}
    for pool in (False, True):
        state = GridEM(data, 1, AnnotatorConfig(pool_responses=pool, seed=0)).run()
        mean, _ = consensus_moments(state.pair_post, state.lattice.n_mu,
                                    state.lattice.mu_values)
        errors[pool] = float(np.sqrt(np.mean((mean - margin) ** 2)))
        assert (state.pooling is not None) == pool
    # 3 votes per pair say little about a margin; 10 pairs per response say much more
    assert errors[True] < 0.75 * errors[False]
    state = GridEM(data, 1, AnnotatorConfig(seed=0)).run()
    assert state.pooling is not None
    assert 0.7 < state.pooling.sd_quality < 2.2  # the simulated qualities have sd 1.5
    assert state.pooling.sd_residual < 1.0


def test_qualities_from_exact_margins_and_cavities_leave_the_pair_out() -> None:
    rng = np.random.default_rng(1)
    quality = rng.normal(0, 1.0, 41)
    pairs = np.array([(i, j) for i in range(40) for j in range(i + 1, 40)])[::3]
    # response 40 appears in a single pair: its own pair is all that is known about it
    pairs = np.vstack([pairs, [[40, 0]]])
    exact = quality[pairs[:, 0]] - quality[pairs[:, 1]]
    pooling = ResponsePooling.initial(pairs, 41, margin_sd=2.5).with_scales(
        exact, np.full(exact.size, 1e-4), sd_residual=0.2, sd_quality=1.0)
    centred = quality[:40] - quality[:40].mean()
    assert np.corrcoef(pooling.quality[:40], centred)[0, 1] > 0.999
    # cavity predictions of the well-connected pairs are close to their margins
    assert np.sqrt(np.mean((pooling.cavity_mean[:-1] - exact[:-1]) ** 2)) < 0.1
    # the lone pair's cavity knows nothing of response 40: mean -q_0, variance >= sd_q^2
    assert pooling.cavity_mean[-1] == pytest.approx(-pooling.quality[0], abs=0.05)
    assert pooling.cavity_var[-1] >= 1.0
    lp = pooling.mu_log_prior(np.linspace(-4, 4, 21))
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0)


def test_no_shared_structure_means_no_pooling() -> None:
    """Pairs on disjoint responses: nothing to pool, so sd_q shrinks toward its floor."""
    rng = np.random.default_rng(2)
    n = 300
    pairs = np.arange(2 * n).reshape(n, 2)
    mu = np.linspace(-6.4, 6.4, 33)
    true = rng.normal(0, 2.0, n)
    mu_lik = np.exp(-0.5 * (mu[None, :] - true[:, None]) ** 2 / 0.8**2)
    mu_lik /= mu_lik.sum(axis=1, keepdims=True)
    fitted = ResponsePooling.initial(pairs, 2 * n, 2.5).refit(mu_lik, mu, population_sd=2.0)
    # qualities can only describe each pair's own margin, which the cavity never sees: the
    # prior stays a population-wide normal, and its scale matches the margins' spread
    assert np.allclose(fitted.cavity_mean, 0.0, atol=1e-6)
    total_sd = np.sqrt(fitted.sd_residual**2 + fitted.cavity_var.mean())
    assert 1.4 < total_sd < 2.6


def test_frames_carry_response_ids_and_conflicts_fail_in_words() -> None:
    world = simulate_world(WorldConfig(n_comparisons=600, seed=2))
    frame = model_frame_from_world(world.judgments, world.pairs)
    enc = encode_frame(frame)
    pr = enc.judgments.pair_responses
    assert pr is not None and pr.shape == (enc.judgments.n_pairs, 2)
    truth = world.pairs.sort("pair_id")
    ids = np.unique(np.concatenate([truth["response_1_id"], truth["response_2_id"]]).astype(str))
    assert enc.judgments.n_responses == ids.size
    assert np.array_equal(ids[pr[:, 0]], truth["response_1_id"].to_numpy().astype(str))
    assert encode_frame(frame.drop("response_2_id")).judgments.pair_responses is None
    votes = frame.group_by("pair_id").len().filter(pl.col("len") > 1).sort("pair_id")
    target = votes["pair_id"][0]
    row = frame.with_row_index().filter(pl.col("pair_id") == target)["index"][0]
    broken = frame.with_row_index().with_columns(
        pl.when(pl.col("index") == row).then(pl.lit("someone-else"))
        .otherwise(pl.col("response_1_id")).alias("response_1_id")
    ).drop("index")
    with pytest.raises(AnnotatorDataError, match="more than one response_1_id"):
        encode_frame(broken)


def test_auto_k_compares_schools_without_pooling_then_pools_the_chosen_fit() -> None:
    world = simulate_world(WorldConfig(n_comparisons=1500, seed=4))
    frame = model_frame_from_world(world.judgments, world.pairs)
    model = AnnotatorModel(n_schools="auto").fit(frame)
    d = model.fit_summary_["diagnostics"]
    assert d["fits"][-1]["data"] == "all, pooled responses"
    assert d["fits"][-1]["n_schools"] == d["n_schools_chosen"]
    assert "independent pair margins" in d["loo_model"]
    assert d["response_pooling"] is True and d["n_responses"] > 0
    fixed = AnnotatorModel(n_schools=2, pool_responses=False).fit(frame)
    assert fixed.fit_summary_["diagnostics"]["response_pooling"] is False
