"""The PyMC model: its likelihood, a real (fast) variational fit, and NUTS (slow)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.special import logsumexp

from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.annotator.data import encode_frame
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.likelihood import careful_logp, lapse_prob
from dissensus.models.annotator.model import build_model
from dissensus.models.annotator.sampling import DIAGNOSED
from dissensus.models.annotator.synthetic import (
    SyntheticConfig,
    model_frame_from_judgments,
    simulate,
)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    world = simulate(SyntheticConfig(n_reviewers=15, n_pairs=40, seed=5))
    return model_frame_from_judgments(world.judgments)


def test_model_likelihood_marginalises_school_and_lapse(frame: pl.DataFrame) -> None:
    enc = encode_frame(frame)
    d = enc.judgments
    model = build_model(d, 2)
    point = model.initial_point()
    rng = np.random.default_rng(0)
    for name in ("z_mu", "z_eps", "z_beta", "z_tilt", "z_deviation_scale"):
        point[name] = rng.normal(0, 1, point[name].shape)
    point["z_dev_zerosum__"] = rng.normal(0, 1, point["z_dev_zerosum__"].shape)
    names = ("reviewer_loglik", "margins", "eps", "beta", "gamma", "pi")
    outs = model.replace_rvs_by_values([model[v] for v in names])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore",
                          point_fn=True)
    get = dict(zip(names, fn(point), strict=True))
    per_reviewer = get["reviewer_loglik"]
    assert np.isfinite(model.compile_logp()(point))
    tau = float(np.exp(point["tau_log__"]))
    eta = get["margins"][d.pair] + (get["beta"][d.reviewer] * d.s)[:, None]
    e = get["eps"][d.reviewer][:, None]
    lik = (1 - e) * np.exp(careful_logp(d.y[:, None], eta, tau)) + e * lapse_prob(
        d.y, d.s, get["gamma"][d.reviewer])[:, None]
    ll = np.zeros((d.n_reviewers, 2))
    np.add.at(ll, d.reviewer, np.log(lik))
    expected = logsumexp(np.log(get["pi"])[None, :] + ll, axis=1)
    assert np.allclose(per_reviewer, expected)
    assert np.all(get["eps"] < 0.5)
    assert get["pi"][0] >= get["pi"][1]  # ordered school weights
    deviations = get["margins"] - get["margins"].mean(axis=1, keepdims=True)
    assert np.allclose(deviations.sum(axis=1), 0.0)  # zero-sum school deviations


def test_advi_fit_fills_the_same_tables(frame: pl.DataFrame) -> None:
    cfg = AnnotatorConfig(n_schools=2, method="advi", advi_iterations=1500, draws=100)
    model = AnnotatorModel(cfg).fit(frame)
    assert model.fit_summary_["method"] == "advi"
    diag = model.fit_summary_["diagnostics"]
    assert any("variational" in w for w in diag["warnings"])
    rel = model.reviewer_estimates_
    assert rel["reliability"].is_between(0.5, 1.0).all()
    shares = model.pair_estimates_.select(
        pl.sum_horizontal("noise_share", "pluralism_share", "ambiguity_share")
    ).to_series()
    assert np.allclose(shares.to_numpy(), 1.0)
    assert model.result_.idata is not None and "eps" in model.result_.idata.posterior


@pytest.mark.slow
def test_nuts_reports_convergence_diagnostics(frame: pl.DataFrame) -> None:
    cfg = AnnotatorConfig(n_schools=2, method="nuts", draws=300, tune=300)
    model = AnnotatorModel(cfg).fit(frame)
    diag = model.fit_summary_["diagnostics"]
    assert diag["sampler"] in ("nutpie", "pymc")
    assert diag["r_hat_max"] is not None and diag["ess_min"] is not None
    assert diag["divergences"] is not None
    # the population parameters are checked too, not only the quantities the tables read
    posterior = model.result_.idata.posterior
    assert {"deviation_scale_loc", "sigma_mu", "eps_scale"} <= set(posterior.data_vars)
    assert diag["r_hat_worst"] in DIAGNOSED
    if diag["r_hat_max"] > 1.01:
        assert any("r_hat" in w and diag["r_hat_worst"] in w for w in diag["warnings"])


@pytest.mark.slow
def test_pymc_nuts_fallback_samples_from_the_em_start(frame: pl.DataFrame) -> None:
    """Where nutpie is not installed PyMC's own NUTS runs, started at the same EM point."""
    cfg = AnnotatorConfig(n_schools=2, method="nuts", nuts_sampler="pymc", draws=60, tune=60,
                          chains=2)
    model = AnnotatorModel(cfg).fit(frame)
    diag = model.fit_summary_["diagnostics"]
    assert diag["sampler"] == "pymc"
    posterior = model.result_.idata.posterior
    assert posterior.sizes["chain"] == 2 and posterior.sizes["draw"] == 60
    assert {"z_mu", "z_deviation_scale", "deviation_scale_sd"} <= set(posterior.data_vars)
    assert model.reviewer_estimates_["reliability"].is_between(0.5, 1.0).all()


@pytest.mark.slow
def test_minibatch_advi_runs(frame: pl.DataFrame) -> None:
    cfg = AnnotatorConfig(n_schools=2, method="minibatch_advi", minibatch_steps=1500,
                          minibatch_reviewers=8, draws=100)
    model = AnnotatorModel(cfg).fit(frame)
    assert model.fit_summary_["method"] == "minibatch_advi"
    assert model.reviewer_estimates_.height == frame["reviewer_id"].n_unique()
    # only what the summaries read is drawn: on large data every latent would take gigabytes
    posterior = model.result_.idata.posterior
    assert set(posterior.data_vars) == {"margins", "eps", "beta", "gamma", "tau", "pi"}
    assert posterior.sizes["draw"] == 200


def test_fixed_scale_deviations_replace_the_scale_mixture() -> None:
    import pymc as pm

    from dissensus.models.annotator.model import _priors

    coords = {"reviewer": np.arange(4), "pair": np.arange(6), "school": np.arange(2)}
    names = {}
    for scale in (None, 1.5):
        with pm.Model(coords=coords) as model:
            _priors(4, 6, 2, scale, form="variational")
        names[scale] = {rv.name for rv in model.free_RVs}
        point = model.initial_point()
        point["z_dev_zerosum__"] = np.full(point["z_dev_zerosum__"].shape, 0.7)
        delta = model.compile_fn(model.replace_rvs_by_values([model["delta"]])[0],
                                 inputs=model.value_vars, on_unused_input="ignore")(point)
        np.testing.assert_allclose(delta.sum(axis=1), 0.0, atol=1e-12)  # still zero-sum
        if scale is not None:
            np.testing.assert_allclose(np.abs(delta), 1.5 * 0.7 / np.sqrt(2))
    assert "deviation_weights" in names[None]
    assert "deviation_weights" not in names[1.5]


def test_minibatch_likelihood_matches_the_full_data_likelihood(frame: pl.DataFrame) -> None:
    """Minibatch ADVI feeds the judgments as symbolic batches; the split fast path of the
    full-data model must give the same per-reviewer log-likelihoods."""
    import pymc as pm
    import pytensor

    from dissensus.models.annotator.model import _priors, reviewer_school_loglik

    d = encode_frame(frame).judgments
    coords = {"reviewer": np.arange(d.n_reviewers), "pair": np.arange(d.n_pairs),
              "school": np.arange(2)}
    with pm.Model(coords=coords) as model:
        params = _priors(d.n_reviewers, d.n_pairs, 2, form="variational")
        fixed = reviewer_school_loglik(params, d.reviewer, d.pair, d.y, d.s, d.n_reviewers)
        batch = [pytensor.shared(a.astype(np.int64)) for a in (d.reviewer, d.pair, d.y, d.s)]
        symbolic = reviewer_school_loglik(params, *batch, d.n_reviewers)
    point = model.initial_point()
    rng = np.random.default_rng(1)
    for name, value in point.items():
        point[name] = value + rng.normal(0, 0.7, np.shape(value))
    fn = model.compile_fn(model.replace_rvs_by_values([fixed, symbolic]),
                          inputs=model.value_vars, on_unused_input="ignore", point_fn=True)
    got_fixed, got_symbolic = fn(point)
    assert np.any(d.y == 0) and np.all(np.isfinite(got_fixed))
    assert np.allclose(got_fixed, got_symbolic)


def test_variational_deviation_prior_is_the_scale_mixture() -> None:
    """Between two deviation values the model's log density changes by exactly the mixture's
    log-density ratio: the unit zero-sum normal the deviations are declared with cancels."""
    import pymc as pm
    from scipy.stats import norm

    from dissensus.models.annotator.model import DEVIATION_SCALES, _priors

    coords = {"reviewer": np.arange(3), "pair": np.arange(2), "school": np.arange(2)}
    with pm.Model(coords=coords) as model:
        _priors(3, 2, 2, form="variational")
    logp = model.compile_logp()
    point = model.initial_point()
    weights = model.compile_fn(model.replace_rvs_by_values([model["deviation_weights"]])[0],
                               inputs=model.value_vars, on_unused_input="ignore")(point)

    def mixture_logpdf(gap: float) -> float:  # one dimension: Delta = (gap, -gap) / sqrt(2)
        return float(np.log(sum(w * norm.pdf(gap, 0, s)
                                for w, s in zip(weights, DEVIATION_SCALES, strict=True))))

    values = {}
    for gap in (0.05, 2.5):
        point["z_dev_zerosum__"] = np.array([[gap], [0.0]])
        values[gap] = float(logp(point))
    expected = mixture_logpdf(0.05) - mixture_logpdf(2.5)
    assert values[0.05] - values[2.5] == pytest.approx(expected, rel=1e-9)
    assert expected > 1.0  # the narrow component favours pairs nobody disputes


def test_em_start_is_a_valid_point_of_the_model(frame: pl.DataFrame) -> None:
    from dissensus.models.annotator.warm_start import em_initial_point, em_state

    enc = encode_frame(frame)
    state = em_state(enc, 2, AnnotatorConfig(n_schools=2))
    point = em_initial_point(state, seed=0)
    d = enc.judgments
    assert point["z_mu"].shape == (d.n_pairs,) and point["z_eps"].shape == (d.n_reviewers,)
    np.testing.assert_allclose(point["z_dev"].sum(axis=1), 0.0, atol=1e-9)
    from pymc.initial_point import make_initial_point_fn

    model = build_model(d, 2)
    # the constrained start values, mapped to the sampler's free space as nutpie maps them
    transformed = make_initial_point_fn(model=model, overrides=point, jitter_rvs=set(),
                                        return_transformed=True)(0)
    assert set(transformed) == set(model.initial_point())
    assert np.isfinite(model.compile_logp()(transformed))
    # the start carries the EM's estimates: through the non-centred parametrisation, the
    # model's school margins at the start are the EM's
    get = model.compile_fn(model.replace_rvs_by_values([model["margins"]])[0],
                           inputs=model.value_vars, on_unused_input="ignore")
    margins = state.pair_post @ state.lattice.margins()
    order = np.argsort(-state.school_weights, kind="stable")
    np.testing.assert_allclose(get(transformed), margins[:, order], atol=0.02)


def test_sampled_form_is_non_centred_around_the_features_prediction() -> None:
    """The NUTS form: a pair's school deviation is the features' prediction plus a residual
    whose size is the pair's log-normal local scale times a unit zero-sum normal, and the
    consensus margin is the features' prediction plus sigma_mu times a unit normal. Every
    pair-level variable the sampler moves is a standard normal: moving one changes the log
    density by exactly the standard normal's ratio."""
    import pymc as pm

    from dissensus.models.annotator.model import _priors

    features = np.array([[1.0], [0.0]])
    coords = {"reviewer": np.arange(3), "pair": np.arange(2), "school": np.arange(2),
              "feature": np.arange(1)}
    with pm.Model(coords=coords) as model:
        _priors(3, 2, 2, features=features)
    free = {rv.name for rv in model.free_RVs}
    assert {"mu_coef_basis", "dev_coef_basis", "z_mu", "z_deviation_scale"} <= free
    assert not {"mu", "deviation_weights"} & free
    logp = model.compile_logp()
    point = model.initial_point()
    names = ("delta", "mu", "mu_coef", "sigma_mu", "deviation_scale_loc", "deviation_scale_sd")
    get = model.compile_fn(model.replace_rvs_by_values([model[n] for n in names]),
                           inputs=model.value_vars, on_unused_input="ignore", point_fn=True)
    point["dev_coef_basis_zerosum__"] = np.array([[1.3]])
    point["mu_coef_basis"] = np.array([0.4])
    point["z_deviation_scale"] = np.array([0.8, -0.3])
    point["z_mu"] = np.array([0.5, -1.0])
    values = {}
    for gap in (0.05, 1.8):
        point["z_dev_zerosum__"] = np.array([[gap], [0.0]])
        values[gap] = float(logp(point))
        got = dict(zip(names, get(point), strict=True))
        local = np.exp(got["deviation_scale_loc"] + got["deviation_scale_sd"] * 0.8)
        # delta = prediction (1.3 on the zero-sum axis) + local scale * the unit residual
        assert got["delta"][0, 0] == pytest.approx((1.3 + local * gap) / np.sqrt(2))
        assert got["delta"][1, 0] == pytest.approx(0.0, abs=1e-12)  # no features, no residual
        np.testing.assert_allclose(
            got["mu"], features[:, 0] * got["mu_coef"][0] + got["sigma_mu"] * point["z_mu"])
    assert values[0.05] - values[1.8] == pytest.approx((1.8**2 - 0.05**2) / 2, rel=1e-9)


def test_variational_form_adds_a_feature_component_to_the_mixture() -> None:
    """In the form variational fits use, the deviations' prior gains a component centred on the
    features' prediction: the model's log density moves by exactly that five-component
    mixture's ratio."""
    import pymc as pm

    from dissensus.models.annotator.model import DEVIATION_SCALES, FEATURE_SD_FLOOR, _priors

    features = np.array([[1.0], [0.0]])
    coords = {"reviewer": np.arange(3), "pair": np.arange(2), "school": np.arange(2),
              "feature": np.arange(1)}
    with pm.Model(coords=coords) as model:
        _priors(3, 2, 2, features=features, form="variational")
    assert {"mu_coef", "dev_coef", "feature_sd_extra", "feature_share"} <= {
        rv.name for rv in model.free_RVs}
    logp = model.compile_logp()
    point = model.initial_point()
    point["dev_coef_zerosum__"] = np.array([[1.3]])
    names = ("delta", "dev_coef", "deviation_weights", "feature_share", "feature_sd_extra")
    get = model.compile_fn(model.replace_rvs_by_values([model[n] for n in names]),
                           inputs=model.value_vars, on_unused_input="ignore", point_fn=True)

    def mixture_logpdf(values: dict[str, np.ndarray]) -> float:
        delta = values["delta"][0]
        centre = features[0] @ values["dev_coef"]
        rho, sd_f = float(values["feature_share"]), FEATURE_SD_FLOOR + float(
            values["feature_sd_extra"])
        terms = [np.log1p(-rho) + np.log(w) - np.log(s) - delta @ delta / (2 * s**2)
                 for w, s in zip(values["deviation_weights"], DEVIATION_SCALES, strict=True)]
        terms.append(np.log(rho) - np.log(sd_f) - (delta - centre) @ (delta - centre)
                     / (2 * sd_f**2))
        return float(np.logaddexp.reduce(terms))

    values, mixture = {}, {}
    for gap in (0.05, 1.8):
        point["z_dev_zerosum__"] = np.array([[gap], [0.0]])
        values[gap] = float(logp(point))
        mixture[gap] = mixture_logpdf(dict(zip(names, get(point), strict=True)))
    assert values[0.05] - values[1.8] == pytest.approx(mixture[0.05] - mixture[1.8], rel=1e-9)


def test_em_start_with_response_features_is_a_valid_point() -> None:
    from pymc.initial_point import make_initial_point_fn

    from dissensus.models.annotator.synthetic import model_frame_from_world
    from dissensus.models.annotator.warm_start import em_initial_point, em_state
    from dissensus.warehouse.demo import WorldConfig, simulate_world

    world = simulate_world(WorldConfig(n_comparisons=800, seed=4))
    enc = encode_frame(model_frame_from_world(world.judgments, world.pairs, world.responses))
    assert enc.features is not None
    state = em_state(enc, 2, AnnotatorConfig(n_schools=2))
    point = em_initial_point(state, seed=0)
    rank = np.linalg.matrix_rank(enc.features.diff)
    assert point["dev_coef_basis"].shape == (rank, 2)
    np.testing.assert_allclose(point["dev_coef_basis"].sum(axis=1), 0.0, atol=1e-9)
    model = build_model(enc.judgments, 2)
    transformed = make_initial_point_fn(model=model, overrides=point, jitter_rvs=set(),
                                        return_transformed=True)(0)
    assert set(transformed) == set(model.initial_point())
    assert np.isfinite(model.compile_logp()(transformed))


def test_feature_coefficients_live_in_the_features_row_space() -> None:
    """Collinear tag columns (a tag = the sum of its within-category columns) leave directions
    the likelihood cannot see: the model samples only the others, in the SVD basis, where the
    Normal(0, 1) prior on the coefficients becomes Normal(0, S^2) per basis direction."""
    import pymc as pm

    from dissensus.models.annotator.model import FeatureBasis, _priors

    rng = np.random.default_rng(3)
    parts = rng.integers(-1, 2, size=(30, 2)).astype(float)
    features = np.column_stack([parts.sum(axis=1), parts])  # column 0 = column 1 + column 2
    basis = FeatureBasis.of(features)
    assert basis.scale.size == 2
    np.testing.assert_allclose(basis.loadings.T @ basis.loadings, np.eye(2), atol=1e-12)
    coef = rng.normal(size=(3, 2))
    np.testing.assert_allclose(basis.scores @ basis.to_basis(coef), features @ coef, atol=1e-12)

    coords = {"reviewer": np.arange(3), "pair": np.arange(30), "school": np.arange(2),
              "feature": np.arange(3)}
    with pm.Model(coords=coords) as model:
        _priors(3, 30, 2, features=features)
    assert model["mu_coef_basis"].owner.inputs[-1].eval() == pytest.approx(basis.scale)
    draws = pm.draw([model["mu_coef"], model["mu_coef_basis"]], draws=3, random_seed=1)
    null = np.array([1.0, -1.0, -1.0])  # features @ null = 0
    for coef_draw, basis_draw in zip(*draws, strict=True):
        assert coef_draw @ null == pytest.approx(0.0, abs=1e-9)
        np.testing.assert_allclose(features @ coef_draw, basis.scores @ basis_draw, atol=1e-9)
