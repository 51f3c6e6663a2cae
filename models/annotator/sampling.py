"""Posterior sampling paths: NUTS (nutpie, else PyMC's own), ADVI and minibatch ADVI.

All paths sample the PyMC model of :mod:`.model`, align school labels across chains, and
summarise the draws into the same :class:`~.results.FitResult` the grid EM produces. With
``n_schools='auto'`` each K is sampled and compared by PSIS-LOO (Vehtari, Gelman & Gabry 2017)
over reviewer-level log-likelihoods (a reviewer's judgments share the marginalised school, so
the reviewer is the unit left out).
"""

from __future__ import annotations

import itertools
import time
import warnings
from typing import Any

import arviz as az
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pymc.pytensorf import find_rng_nodes, reseed_rngs

from dissensus.warehouse.errors import DissensusError

from .config import AnnotatorConfig
from .data import EncodedFrame
from .decomposition import Population, binned_biases, decompose_draws
from .evidence import bias_reference, lapse_flagged
from .grid_em import GridState
from .likelihood import careful_logp, lapse_prob
from .model import _priors, build_model, model_coords, reviewer_school_loglik
from .results import FitResult, Progress
from .selection import choose_k, loo_row
from .summarise import draws_at_bound
from .taste import flags_robust_to_taste
from .warm_start import em_initial_point, em_state

SCHOOL_VARS = ("pi", "delta", "margins", "z_dev", "dev_coef", "dev_coef_basis")


def _nuts(
    model: pm.Model, config: AnnotatorConfig, init: dict[str, Any] | None = None
) -> tuple[az.InferenceData, str]:
    if config.nuts_sampler in ("auto", "nutpie"):
        try:
            import nutpie
        except ImportError as error:
            if config.nuts_sampler == "nutpie":
                raise DissensusError(
                    "nuts_sampler='nutpie' was asked for, but nutpie is not installed",
                    where="annotator model, NUTS", expected="the nutpie package",
                    fix="pip install nutpie (the 'bench' extra), or set nuts_sampler='auto'",
                ) from error
        else:
            compiled = nutpie.compile_pymc_model(
                model, initial_points=init, jitter_rvs=set() if init else None
            )
            try:
                idata = nutpie.sample(
                    compiled, draws=config.draws, tune=config.tune, chains=config.chains,
                    seed=config.seed, progress_bar=False, target_accept=config.target_accept,
                    low_rank_modified_mass_matrix=config.nuts_low_rank_mass_matrix,
                )
            except RuntimeError as error:  # nutpie reports sampler failures this way
                raise DissensusError(
                    "NUTS (nutpie) could not sample the annotator model: "
                    + str(error).splitlines()[0],
                    expected="a starting point with a finite, non-zero gradient",
                    fix="fit with --method em (the default), or set nuts_sampler='pymc' or "
                    "nuts_init='default' in the annotator config",
                ) from error
            return idata, "nutpie"
    if config.nuts_sampler == "numpyro":
        try:
            with model:
                idata = pm.sample(
                    draws=config.draws, tune=config.tune, chains=config.chains,
                    random_seed=config.seed, target_accept=config.target_accept,
                    progressbar=False, nuts_sampler="numpyro", compute_convergence_checks=False,
                    initvals=init,
                    nuts_sampler_kwargs={"chain_method": "vectorized"},
                )
        except ImportError as error:
            raise DissensusError(
                "nuts_sampler='numpyro' was asked for, but numpyro (or JAX) is not installed",
                where="annotator model, NUTS", expected="the numpyro and jax packages",
                fix="pip install numpyro, or set nuts_sampler='auto'",
            ) from error
        return idata, "numpyro"
    with model:
        idata = pm.sample(
            draws=config.draws, tune=config.tune, chains=config.chains,
            random_seed=config.seed, target_accept=config.target_accept,
            progressbar=False, cores=1, compute_convergence_checks=False, initvals=init,
        )
    return idata, "pymc"


def _advi(model: pm.Model, config: AnnotatorConfig) -> az.InferenceData:
    with model:
        approx = pm.fit(n=config.advi_iterations, method="advi", random_seed=config.seed,
                        progressbar=False)
        return approx.sample(draws=max(config.draws, 200), random_seed=config.seed)


def _minibatch_advi(enc: EncodedFrame, k_n: int, config: AnnotatorConfig) -> az.InferenceData:
    """ADVI on random batches of whole reviewers (their school is shared by all their votes)."""
    d = enc.judgments
    order = np.argsort(d.reviewer, kind="stable")
    starts = np.searchsorted(d.reviewer[order], np.arange(d.n_reviewers + 1))
    batch = min(config.minibatch_reviewers, d.n_reviewers)
    rng = np.random.default_rng(config.seed)

    def draw() -> dict[str, np.ndarray]:
        who = np.sort(rng.choice(d.n_reviewers, size=batch, replace=False))
        votes = np.concatenate([order[starts[r]:starts[r + 1]] for r in who])
        row = np.repeat(np.arange(batch), starts[who + 1] - starts[who])
        return {"who": who, "rev": d.reviewer[votes], "pair": d.pair[votes], "y": d.y[votes],
                "s": d.s[votes], "row": row}

    first = draw()
    shared = {k: pytensor.shared(v.astype(np.int64), name=f"mb_{k}") for k, v in first.items()}
    features = d.pair_features if config.response_features else None
    coords = model_coords(d, k_n, features)
    with pm.Model(coords=coords):
        params = _priors(d.n_reviewers, d.n_pairs, k_n, config.minibatch_deviation_scale,
                         features, form="variational", lapse_max=d.lapse_max)
        ll = reviewer_school_loglik(params, shared["rev"], shared["pair"], shared["y"],
                                    shared["s"], batch, row=shared["row"])
        per = pm.math.logsumexp(pm.math.log(params["pi"])[None, :] + ll, axis=1)
        pm.Potential("likelihood", per.sum() * (d.n_reviewers / batch))

        def refresh(*_: Any) -> None:
            for key, value in draw().items():
                shared[key].set_value(value.astype(np.int64))

        rate = config.minibatch_learning_rate
        optimizer = {} if rate is None else {"obj_optimizer": pm.adam(learning_rate=rate)}
        approx = pm.fit(n=config.minibatch_steps, method="advi", random_seed=config.seed,
                        progressbar=False, callbacks=[refresh], **optimizer)
        return _summary_draws(approx, k_n, config.seed, coords)


def _summary_draws(
    approx: Any, k_n: int, seed: int, coords: dict[str, np.ndarray], draws: int = 200,
    chunk: int = 25,
) -> az.InferenceData:
    """Draws of only the quantities the summaries read, a chunk at a time.

    ``approx.sample`` records every latent variable and deterministic at once: on a million
    comparisons that is gigabytes (each pair's margin, deviation, local scale...). 200 draws are
    plenty for means and 94% intervals.
    """
    names = ["margins", "eps", "beta", "gamma", "tau"] + (["pi"] if k_n > 1 else [])
    size = pt.iscalar("draws")
    outs = approx.sample_node([approx.model[n] for n in names], size=size)
    sample = pytensor.function([size], outs)
    reseed_rngs(find_rng_nodes(outs), seed)
    parts = [sample(min(chunk, draws - start)) for start in range(0, draws, chunk)]
    dims = {"margins": ["pair", "school"], "eps": ["reviewer"], "beta": ["reviewer"],
            "gamma": ["reviewer"], "pi": ["school"]}
    posterior = {
        n: np.concatenate([p[i] for p in parts])[None, ...] for i, n in enumerate(names)
    }
    return az.from_dict(posterior=posterior, coords=coords,
                        dims={n: d for n, d in dims.items() if n in posterior})


def align_chains(idata: az.InferenceData, k_n: int) -> az.InferenceData:
    """Relabel schools chain by chain to match chain 0 (by the school deviations' pattern)."""
    post = idata.posterior
    if k_n < 2 or "delta" not in post or post.sizes["chain"] < 2:
        return idata
    ref = post["delta"].isel(chain=0).mean("draw").values  # (pair, school)
    fixed = {name: post[name].values.copy() for name in SCHOOL_VARS if name in post}
    for c in range(1, post.sizes["chain"]):
        cur = post["delta"].isel(chain=c).mean("draw").values
        best = max(itertools.permutations(range(k_n)),
                   key=lambda p: float(np.sum(ref * cur[:, list(p)])))
        for name, arr in fixed.items():
            if "school" not in post[name].dims:
                continue
            axis = list(post[name].dims).index("school")
            arr[c] = np.take(arr[c], list(best), axis=axis - 1)
    for name, arr in fixed.items():
        post[name] = (post[name].dims, arr)
    return idata


def _draws(idata: az.InferenceData, name: str, max_draws: int = 200) -> np.ndarray:
    arr = idata.posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
    step = max(1, arr.shape[0] // max_draws)
    return arr[::step]


def summarise_draws(
    idata: az.InferenceData, enc: EncodedFrame, k_n: int, config: AnnotatorConfig, seconds: float
) -> FitResult:
    """Summaries of posterior draws in the form the estimator expects."""
    d = enc.judgments
    mass = config.interval_mass
    qs = ((1 - mass) / 2, 1 - (1 - mass) / 2)
    eps = _draws(idata, "eps", 10_000)
    beta = _draws(idata, "beta", 10_000)
    sub = {n: _draws(idata, n) for n in ("eps", "beta", "gamma", "margins")}
    tau_d = _draws(idata, "tau")
    pi_d = _draws(idata, "pi") if k_n > 1 else np.ones((tau_d.shape[0], 1))
    n_d = tau_d.shape[0]
    resp = np.zeros((d.n_reviewers, k_n))
    careful = np.zeros(d.n)
    for i in range(n_d):
        e, b, g, m = sub["eps"][i], sub["beta"][i], sub["gamma"][i], sub["margins"][i]
        eta = m[d.pair] + (b[d.reviewer] * d.s)[:, None]
        c = (1 - e[d.reviewer])[:, None] * np.exp(careful_logp(d.y[:, None], eta, float(tau_d[i])))
        lap = (e[d.reviewer] * lapse_prob(d.y, d.s, g[d.reviewer]))[:, None]
        log_lik = np.log(c + lap)
        ll = np.stack(
            [np.bincount(d.reviewer, log_lik[:, k], d.n_reviewers) for k in range(k_n)], axis=1
        )
        ll += np.log(pi_d[i])[None, :]
        r = np.exp(ll - ll.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        resp += r / n_d
        careful += np.sum(r[d.reviewer] * c / (c + lap), axis=1) / n_d
    bias_mean = beta.mean(axis=0)
    bias_values, bias_weights = binned_biases(bias_mean)
    centre = bias_reference(enc, np.ones(bias_mean.size), np.sort(bias_mean))
    pop = Population(
        school_weights=pi_d.mean(axis=0), tau=float(tau_d.mean()), lapse_mean=float(eps.mean()),
        bias_values=bias_values, bias_weights=bias_weights,
    )
    pairs = decompose_draws(np.transpose(sub["margins"], (1, 0, 2)), pop, mass,
                            config.ambiguity_min_variance)
    return FitResult(
        method="", n_schools=k_n, seconds=seconds, school_weights=pop.school_weights,
        reliability=1 - eps.mean(axis=0),
        reliability_low=np.where(draws_at_bound(eps, d.lapse_max), 0.0,
                                 1 - np.quantile(eps, qs[1], axis=0)),
        reliability_high=1 - np.quantile(eps, qs[0], axis=0),
        p_unreliable=(eps > 1 - config.flag_min_reliability).mean(axis=0),
        lapse_evidence=_draws_bayes_factor(eps, config),
        bias_mean=bias_mean,
        bias_low=np.quantile(beta, qs[0], axis=0),
        bias_high=np.quantile(beta, qs[1], axis=0),
        p_strong_bias=(np.abs(beta - centre) > config.position_bias_flag).mean(axis=0),
        bias_centre=centre,
        school_probs=resp, careful_prob=careful, pairs=pairs,
        expected_lapses=np.bincount(d.pair, 1 - careful, d.n_pairs), population=pop,
        idata=idata,
    )


def _draws_bayes_factor(eps: np.ndarray, config: AnnotatorConfig) -> np.ndarray:
    """:func:`.evidence.lapse_bayes_factor` from posterior draws ``(draws, R)`` of the lapse
    rates; the pool's odds are those of all reviewers' draws together."""
    hi, lo = eps > 1 - config.flag_min_reliability, eps <= config.careful_lapse_limit
    tiny = 1e-3
    own = (hi.mean(axis=0) + tiny) / (lo.mean(axis=0) + tiny)
    return own / ((hi.mean() + tiny) / (lo.mean() + tiny))


DIAGNOSED = ("tau", "eps", "beta", "mu", "pi", "delta", "gamma", "sigma_mu", "eps_loc",
             "eps_scale", "sigma_beta", "tilt_loc", "tilt_scale", "deviation_scale_loc",
             "deviation_scale_sd", "mu_coef_basis", "dev_coef_basis", "mu_coef", "dev_coef")
"""Every quantity the outputs read plus the population parameters they depend on."""


def _diagnostics(idata: az.InferenceData, method: str) -> dict[str, Any]:
    if method != "nuts":
        return {"r_hat_max": None, "r_hat_worst": None, "ess_min": None, "divergences": None}
    names = [v for v in DIAGNOSED if v in idata.posterior]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = az.rhat(idata, var_names=names)
        ess = az.ess(idata, var_names=names)
    worst = max(names, key=lambda v: float(rhat[v].max()))
    div = int(idata.sample_stats["diverging"].sum()) if "diverging" in idata.sample_stats else 0
    return {
        "r_hat_max": float(rhat[worst].max()),
        "r_hat_worst": worst,
        "ess_min": float(min(float(ess[v].min()) for v in names)),
        "divergences": div,
    }


def fit_sampled(
    enc: EncodedFrame, config: AnnotatorConfig, method: str, progress: Progress | None = None
) -> FitResult:
    """NUTS / ADVI / minibatch ADVI for a fixed K or K = 1, 2, 3 compared by PSIS-LOO."""
    start = time.perf_counter()
    ks = [1, 2, 3] if config.n_schools == "auto" else [int(config.n_schools)]
    runs: dict[int, az.InferenceData] = {}
    states: dict[int, GridState] = {}  # the grid EM at each K, where NUTS started from it
    backend = method
    for i, k in enumerate(ks):
        if progress is not None:
            progress(f"{method}, {k} school{'s' if k > 1 else ''}", i / len(ks))
        if method == "minibatch_advi":
            idata = _minibatch_advi(enc, k, config)
        else:
            if method == "nuts":
                init = None
                if config.nuts_init == "em":
                    states[k] = em_state(enc, k, config)
                    init = em_initial_point(states[k], config.seed)
                idata, backend = _nuts(build_model(enc.judgments, k, config.response_features),
                                       config, init)
            else:
                idata = _advi(build_model(enc.judgments, k, config.response_features,
                                          form="variational"), config)
        runs[k] = align_chains(idata, k)
    pointwise: dict[int, np.ndarray] = {}
    pareto_bad = 0
    for k, idata in runs.items():
        ll = idata.posterior.get("reviewer_loglik", None)
        if ll is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(az.InferenceData(posterior=idata.posterior,
                                          log_likelihood=xr.Dataset({"reviewer_loglik": ll})),
                         pointwise=True)
        pointwise[k] = np.asarray(loo.loo_i)
        pareto_bad += int(np.sum(np.asarray(loo.pareto_k) > 0.7))
    if len(pointwise) == len(runs) and len(runs) > 1:
        chosen, table = choose_k(pointwise, config)
    else:
        chosen = ks[-1] if len(ks) == 1 else ks[0]
        table = [loo_row(pointwise[k], k, None) for k in pointwise]
    result = summarise_draws(runs[chosen], enc, chosen, config, time.perf_counter() - start)
    result.method = method
    diag = _diagnostics(runs[chosen], method)
    warns = list(enc.warnings)
    if diag["r_hat_max"] is not None and diag["r_hat_max"] > 1.01:
        warns.append(f"r_hat max {diag['r_hat_max']:.3f} > 1.01 (in {diag['r_hat_worst']}): "
                     "chains disagree; sample longer (--tune, --draws)")
    if diag["ess_min"] is not None and diag["ess_min"] < 100:
        warns.append(f"ESS min {diag['ess_min']:.0f} < 100: too few effective draws")
    if diag["divergences"]:
        warns.append(f"{diag['divergences']} divergent transitions: the posterior is distorted")
    if pareto_bad:
        warns.append(f"{pareto_bad} reviewer(s) with Pareto k > 0.7: LOO is unreliable there")
    if method != "nuts":
        warns.append("variational posterior: intervals are typically too narrow")
    # in a label task a lean toward one label is the bias term; the grid EM is read only where
    # someone is flagged (ADVI has none to hand)
    if not enc.cues.label_order and lapse_flagged(result, config).any():
        t_k = time.perf_counter()
        state = states[chosen] if chosen in states else em_state(enc, chosen, config)
        warns.extend(flags_robust_to_taste(result, state, enc.judgments, config, enc.cues.names,
                                           progress))
        result.diagnostics["taste_check_seconds"] = round(time.perf_counter() - t_k, 2)
        result.seconds = time.perf_counter() - start
    result.diagnostics.update({
        **diag, "sampler": backend, "loo_method": "PSIS-LOO over reviewers (arviz)",
        "loo_table": table, "n_schools_chosen": chosen, "n_schools_mode": str(config.n_schools),
        "warnings": warns,
    })
    return result
