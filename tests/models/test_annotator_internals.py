"""The compiled BP sweeps against a plain numpy reference, and the decomposition's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from dissensus.models.annotator._kernels import careful_table, pair_pass, reviewer_pass
from dissensus.models.annotator.decomposition import (
    Population,
    binned_biases,
    components,
    decompose_draws,
    decompose_states,
    verdicts,
)
from dissensus.models.annotator.evidence import prob_above
from dissensus.models.annotator.lattice import make_lattice
from dissensus.models.annotator.likelihood import (
    careful_derivatives,
    careful_logp,
    careful_probs,
    lapse_prob,
    vote_value,
)
from dissensus.models.annotator.selection import choose_k
from dissensus.models.annotator.summarise import grid_quantiles

RNG = np.random.default_rng(0)


def test_ordered_logit_derivatives_match_finite_differences() -> None:
    eta, tau, h = np.linspace(-4, 4, 17), 0.45, 1e-5
    for y in (-1, 0, 1):
        d_eta, d2_eta, d_tau, d2_tau = careful_derivatives(y, eta, tau)

        def f(e: np.ndarray, t: float, y: int = y) -> np.ndarray:
            return careful_logp(y, e, t)

        assert np.allclose(d_eta, (f(eta + h, tau) - f(eta - h, tau)) / (2 * h), atol=1e-6)
        assert np.allclose(d_tau, (f(eta, tau + h) - f(eta, tau - h)) / (2 * h), atol=1e-6)
        assert np.allclose(d2_eta, (f(eta + h, tau) - 2 * f(eta, tau) + f(eta - h, tau)) / h**2,
                           atol=1e-3)
        assert np.all(d2_tau <= 0) and np.all(d2_eta <= 0)  # log-concave
        table = careful_table(eta, tau)[y + 1]
        assert np.allclose(table[:, 0], np.exp(f(eta, tau)))
        assert np.allclose(table[:, 1], d_tau) and np.allclose(table[:, 2], d2_tau)
    p = careful_probs(eta, tau)
    assert np.allclose(p[0] + p[1] + p[2], 1.0)
    assert np.allclose(lapse_prob(np.array([1, -1, 0, 1]), np.array([1, 1, 1, 0]), 0.7),
                       [0.7, 0.3, 0.0, 0.5])


def test_reviewer_pass_matches_numpy_reference() -> None:
    n, n_rev, k_n, g_n, b_n = 60, 6, 2, 5, 3
    rev = RNG.integers(0, n_rev, n)
    order = np.argsort(rev, kind="stable").astype(np.int64)
    starts = np.searchsorted(rev[order], np.arange(n_rev + 1)).astype(np.int64)
    ec = RNG.random((n, k_n, b_n))
    pl_ = RNG.random(n) * (RNG.random(n) > 0.3)
    e = np.array([0.02, 0.1, 0.2, 0.35, 0.48])
    lp = np.log(RNG.random((k_n, g_n, b_n)))
    post, a, b = np.empty((n_rev, k_n, g_n, b_n)), np.empty((n, k_n, b_n)), np.empty(n)
    reviewer_pass(starts, order, ec, pl_, e, lp, post, a, b)
    logm = np.log((1 - e)[None, None, :, None] * ec[:, :, None, :]
                  + e[None, None, :, None] * pl_[:, None, None, None])
    lb = np.tile(lp, (n_rev, 1, 1, 1))
    np.add.at(lb, rev, logm)
    lb -= logsumexp(lb, axis=(1, 2, 3), keepdims=True)
    assert np.allclose(np.exp(lb), post)
    cav = lb[rev] - logm
    cav = np.exp(cav - logsumexp(cav, axis=(1, 2, 3), keepdims=True))
    assert np.allclose(np.einsum("nkgb,g->nkb", cav, 1 - e), a)
    assert np.allclose(pl_ * np.einsum("nkgb,g->n", cav, e), b)


@pytest.mark.parametrize("k_n", [1, 2, 3])
def test_pair_pass_matches_numpy_reference(k_n: int) -> None:
    h, n, n_pairs, b_half = 0.5, 50, 7, 1
    lat = make_lattice(k_n, h, 1.5, 1.0)
    pair = np.sort(RNG.integers(0, n_pairs, n))
    starts = np.searchsorted(pair, np.arange(n_pairs + 1)).astype(np.int64)
    y = RNG.integers(-1, 2, n).astype(np.int64)
    s = RNG.choice([-1, 0, 1], n).astype(np.int64)
    bias = (h / 2) * np.arange(-b_half, b_half + 1)
    m_int = np.rint(lat.m_values / h).astype(np.int64)
    x_lo = 2 * m_int.min() - b_half
    x = (h / 2) * np.arange(x_lo, 2 * m_int.max() + b_half + 1)
    m2 = (2 * m_int - x_lo).astype(np.int64)
    tau = 0.4
    a = RNG.random((n, k_n, bias.size)) * 0.3
    b = RNG.random(n) * 0.1
    lps = np.log(RNG.random(lat.n_states))
    # a per-pair prior on the consensus margin (response pooling) on top of the shared one
    mu_lp = np.log(RNG.random((n_pairs, lat.n_mu)))
    # and a per-pair prior on the deviations (response features)
    delta_lp = np.log(RNG.random((n_pairs, lat.deviations.shape[0])))
    post, ec = np.empty((n_pairs, lat.n_states)), np.empty((n, k_n, bias.size))
    mu_lik = np.empty((n_pairs, lat.n_mu))
    z, stats = np.empty(n), np.empty((n, 2))
    pair_pass(starts, y, s, a, b, careful_table(x, tau)[None], np.zeros(y.size, np.int64), m2,
              b_half, lat.midx, lps, mu_lp, lat.state_mu, delta_lp, lat.state_delta, mu_lik,
              post, ec, z, stats)
    eta = lat.margins()[None, :, :, None] + (s[:, None] * bias[None, :])[:, None, None, :]
    pc = np.exp(careful_logp(y[:, None, None, None], eta, tau))
    msg = b[:, None] + np.einsum("nkb,nskb->ns", a, pc)
    lb = lps[None, :] + mu_lp[:, lat.state_mu] + delta_lp[:, lat.state_delta]
    np.add.at(lb, pair, np.log(msg))
    lb -= logsumexp(lb, axis=1, keepdims=True)
    assert np.allclose(np.exp(lb), post)
    # the votes' likelihood of each consensus margin, under the deviations' prior only
    lik = lps[None, :] + delta_lp[:, lat.state_delta]
    np.add.at(lik, pair, np.log(msg))
    lik_mu = np.stack([logsumexp(lik[:, lat.state_mu == m], axis=1) for m in range(lat.n_mu)], 1)
    assert np.allclose(np.exp(lik_mu - logsumexp(lik_mu, axis=1, keepdims=True)), mu_lik)
    cav = lb[pair] - np.log(msg)
    cav = np.exp(cav - logsumexp(cav, axis=1, keepdims=True))
    ec_ref = np.einsum("ns,nskb->nkb", cav, pc)
    assert np.allclose(ec_ref, ec)
    assert np.allclose(np.einsum("nkb,nkb->n", a, ec_ref) + b, z)


def test_lattice_is_zero_sum_and_mirrored() -> None:
    for k_n in (2, 3):
        lat = make_lattice(k_n, 0.4, 2.0, 1.2)
        assert np.all(lat.deviations.sum(axis=1) == 0)
        assert np.all(lat.deviations[0] == 0)
        m = lat.margins()
        assert np.allclose(m[lat.mirror], -m)


def test_decomposition_is_the_law_of_total_variance() -> None:
    """Monte Carlo: simulate population votes and compare the three components."""
    pop = Population(np.array([0.6, 0.4]), tau=0.5, lapse_mean=0.1,
                     bias_values=np.array([0.0, 1.0]), bias_weights=np.array([0.8, 0.2]))
    margins = np.array([[2.0, -1.5], [0.1, 0.1], [3.0, 3.0]])
    noise, plur, amb = components(margins, pop)
    rng = np.random.default_rng(1)
    n = 400_000
    for j, m in enumerate(margins):
        k = rng.choice(2, n, p=pop.school_weights)
        b = rng.choice(pop.bias_values, n, p=pop.bias_weights)
        s = rng.choice([-1.0, 1.0], n)
        p_plus, p_tie, _ = careful_probs(m[k] + b * s, pop.tau)
        u = rng.random(n)
        vote = np.where(u < p_plus, 1.0, np.where(u < p_plus + p_tie, 0.5, 0.0))
        lapse = rng.random(n) < pop.lapse_mean
        vote = np.where(lapse, (rng.random(n) < 0.5).astype(float), vote)
        total = vote.var()
        _, var_k = vote_value(*careful_probs(m, pop.tau)[:2])
        assert amb[j] == pytest.approx(var_k @ pop.school_weights)
        assert noise[j] + plur[j] + amb[j] == pytest.approx(total, abs=3e-3)
    assert plur[1] == pytest.approx(0.0) and plur[2] == pytest.approx(0.0)
    assert plur[0] > amb[0] * 0.5
    weights = np.eye(3)
    dec = decompose_states(margins, weights, pop, 0.94, 0.13)
    sums = dec.noise_share + dec.pluralism_share + dec.ambiguity_share
    assert np.allclose(sums, 1.0)


def test_grid_quantiles_and_tail_probabilities() -> None:
    grid = np.linspace(0.005, 0.495, 50)
    post = np.ones((1, 50)) / 50  # uniform on (0, 0.5)
    q = grid_quantiles(post, grid, (0.03, 0.5, 0.97))
    assert np.allclose(q, [[0.015, 0.25, 0.485]], atol=1e-9)
    assert prob_above(post, grid, 0.2)[0] == pytest.approx(0.6)


def test_k_selection_needs_a_real_gain() -> None:
    base = RNG.normal(-0.7, 0.3, 2000)
    noise = base + RNG.normal(0.0, 0.01, 2000)  # tiny, noisy gain
    real = base + 0.02  # 40 nats, consistent
    k, table = choose_k({1: base, 2: noise}, _config())
    assert k == 1 and table[0]["chosen"]
    k, _ = choose_k({1: base, 2: real}, _config())
    assert k == 2


def _config():  # type: ignore[no-untyped-def]
    from dissensus.models.annotator.config import AnnotatorConfig

    return AnnotatorConfig()


def test_draws_decomposition_is_the_same_in_blocks() -> None:
    rng = np.random.default_rng(3)
    draws = rng.normal(0.0, 2.0, size=(37, 20, 2))
    values, weights = binned_biases(rng.normal(0.0, 0.4, size=500))
    assert values.size <= 15 and np.isclose(weights.sum(), 1.0)
    pop = Population(np.array([0.6, 0.4]), 0.3, 0.08, values, weights)
    whole = decompose_draws(draws, pop, 0.94, 0.13)
    blocks = decompose_draws(draws, pop, 0.94, 0.13, block=200)  # 5 pairs per block
    for name in ("p_first", "noise_share", "pluralism_share", "share_low", "p_pluralism",
                 "p_ambiguous"):
        np.testing.assert_allclose(getattr(blocks, name), getattr(whole, name))


def test_noise_is_named_only_where_a_departing_lapse_is_credible() -> None:
    """Three pairs with the same disagreement and expected lapses: the one whose departing
    votes hold a lapse at 0.9 is noise, the one at 0.5 is unsettled, and a pair whose votes
    carry too few expected lapses stays clear, whatever the departing probability."""
    pop = Population(np.array([1.0]), tau=0.35, lapse_mean=0.1,
                     bias_values=np.array([0.0]), bias_weights=np.array([1.0]))
    dec = decompose_states(np.array([[3.0], [3.0], [3.0]]), np.eye(3), pop, 0.94, 0.13)
    assert np.all(dec.p_ambiguous == 0.0)
    said = verdicts(dec, np.array([True, True, True]), np.array([1.0, 1.0, 0.2]),
                    np.array([0.9, 0.5, 0.9]), n_schools=1, pluralism_probability=0.5,
                    ambiguity_min_variance=0.13, noise_min_lapses=0.5, noise_probability=0.8)
    assert said == ["noise", "unsettled", "clear"]
    # the bar at 0 reads every such pair as noise, as fits before the bar did
    assert verdicts(dec, np.array([True, True, True]), np.array([1.0, 1.0, 0.2]),
                    np.array([0.9, 0.5, 0.9]), n_schools=1, pluralism_probability=0.5,
                    ambiguity_min_variance=0.13, noise_min_lapses=0.5,
                    noise_probability=0.0) == ["noise", "noise", "clear"]
