"""Response features (tags) as covariates of the school margins."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from dissensus.models.annotator.data import encode_frame
from dissensus.models.annotator.deviation_prior import DeviationPrior
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.features import pair_features
from dissensus.models.annotator.lattice import make_lattice
from dissensus.models.annotator.pooling import ResponsePooling
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.warehouse.demo import WorldConfig, simulate_world


def test_features_are_tag_differences_plus_tags_within_the_category() -> None:
    rows = [(["refusal"], [], "billing")] * 5 + [([], ["refusal", "hedge"], "urgent")] * 5
    rows += [(["hedge"], ["hedge"], "billing")]  # the same tag on both sides: no difference
    per_pair = pl.DataFrame(rows, schema=["response_1_tags", "response_2_tags", "category"],
                            orient="row")
    feats = pair_features(per_pair)
    assert feats is not None
    col = {n: i for i, n in enumerate(feats.names)}
    assert set(col) == {"refusal", "refusal|billing", "refusal|urgent", "hedge", "hedge|urgent"}
    assert feats.diff[0, col["refusal"]] == 1 and feats.diff[0, col["refusal|billing"]] == 1
    assert feats.diff[5, col["refusal"]] == -1 and feats.diff[5, col["hedge|urgent"]] == -1
    assert feats.diff[0, col["refusal|urgent"]] == 0
    assert not feats.diff[10].any()


def test_no_telling_tags_means_no_features() -> None:
    same = pl.DataFrame({"response_1_tags": [["a"]] * 20, "response_2_tags": [["a"]] * 20})
    assert pair_features(same) is None
    rare = pl.DataFrame({"response_1_tags": [["a"]] * 4 + [[]] * 16,
                         "response_2_tags": [[]] * 20})
    assert pair_features(rare) is None  # differs in fewer than MIN_PAIRS pairs
    world = simulate_world(WorldConfig(n_comparisons=400, seed=1))
    assert encode_frame(model_frame_from_world(world.judgments, world.pairs)).features is None


def _posteriors(values: np.ndarray, lattice_devs: np.ndarray, width: float) -> np.ndarray:
    sq = np.sum((lattice_devs[None, :, :] - values[:, None, :]) ** 2, axis=2)
    post = np.exp(-0.5 * sq / width**2)
    return post / post.sum(axis=1, keepdims=True)


def test_deviation_prior_learns_how_schools_weigh_each_feature() -> None:
    rng = np.random.default_rng(0)
    lat = make_lattice(2, 0.4, 6.4, 4.0)
    devs = lat.step * lat.deviations.astype(float)
    diff = rng.integers(-1, 2, size=(600, 3)).astype(float)
    true = np.array([[1.2, 0.0, -0.8], [-1.2, 0.0, 0.8]])
    post = _posteriors(diff @ true.T, devs, 0.3)
    h = np.full(devs.shape[0], 1.0 / devs.shape[0])
    prior = DeviationPrior.initial(diff, devs)
    for _ in range(30):
        prior, rest = prior.refit(post, h, lat.step)
    assert np.allclose(prior.coef, true, atol=0.1)
    assert prior.share > 0.9 and prior.sd < 0.5
    assert rest.sum() < 0.1 * diff.shape[0]  # little left for the feature-free prior
    log_prior, _ = prior.log_prior(h)
    assert np.allclose(np.exp(log_prior).sum(axis=1), 1.0)
    # deviations the features do not predict: the weights stay near zero
    noise = _posteriors(rng.choice([-2.0, 0.0, 2.0], size=(600, 1)) * np.array([[1.0, -1.0]]),
                        devs, 0.3)
    blind = DeviationPrior.initial(diff, devs)
    for _ in range(30):
        blind, _ = blind.refit(noise, h, lat.step)
    assert np.abs(blind.coef).max() < 0.25


def test_pooling_learns_the_features_part_of_the_qualities() -> None:
    rng = np.random.default_rng(3)
    n = 400
    pairs = np.arange(2 * n).reshape(n, 2)  # disjoint: only the features can pool
    diff = rng.integers(-1, 2, size=(n, 2)).astype(float)
    coef = np.array([2.0, -1.0])
    mu = np.linspace(-6.4, 6.4, 33)
    true = diff @ coef + rng.normal(0, 0.3, n)
    mu_lik = np.exp(-0.5 * (mu[None, :] - true[:, None]) ** 2 / 0.8**2)
    mu_lik /= mu_lik.sum(axis=1, keepdims=True)
    fitted = ResponsePooling.initial(pairs, 2 * n, 2.5, diff)
    for _ in range(3):
        fitted = fitted.refit(mu_lik, mu, population_sd=2.0)
    assert fitted.feature_coef is not None
    assert np.allclose(fitted.feature_coef, coef, atol=0.15)
    assert np.sqrt(np.mean((fitted.cavity_mean - diff @ coef) ** 2)) < 0.2


@pytest.fixture(scope="module")
def tagged_fits():  # type: ignore[no-untyped-def]
    world = simulate_world(WorldConfig(n_comparisons=3000, seed=3))
    frame = model_frame_from_world(world.judgments, world.pairs, world.responses)
    with_tags = AnnotatorModel(n_schools=2, seed=1).fit(frame)
    votes_only = AnnotatorModel(n_schools=2, seed=1, response_features=False).fit(frame)
    return world, with_tags, votes_only


def _careful_ari(model: AnnotatorModel, world) -> float:  # type: ignore[no-untyped-def]
    t = model.reviewer_estimates_.join(world.reviewers.select("reviewer_id", "school_index",
                                                              "is_rushed"), on="reviewer_id")
    t = t.filter(~pl.col("is_rushed"))
    return float(adjusted_rand_score(t["school_index"], t["school"]))


def test_tags_sharpen_schools_and_pluralism(tagged_fits) -> None:  # type: ignore[no-untyped-def]
    world, with_tags, votes_only = tagged_fits
    assert _careful_ari(with_tags, world) >= max(_careful_ari(votes_only, world), 0.8)

    def auc(model: AnnotatorModel) -> float:
        pairs = model.pair_estimates_.join(world.pairs.select("pair_id", "contested"),
                                           on="pair_id")
        return float(roc_auc_score(pairs["contested"], pairs["pluralism_share"]))

    # votes alone reach about 0.86 here: 3-8 votes per pair cannot pin a deviation down
    assert auc(with_tags) >= max(auc(votes_only) + 0.08, 0.97)


def test_the_fit_says_where_the_schools_differ(tagged_fits) -> None:  # type: ignore[no-untyped-def]
    _, with_tags, votes_only = tagged_fits
    d = with_tags.fit_summary_["diagnostics"]
    assert d["response_features"] and d["feature_share"] > 0.5
    top = d["school_contrasts"][0]
    # the simulated schools split hardest on escalating urgent symptoms (+3.0 vs -1.2)
    assert top["feature"] in {"escalation", "escalation|urgent_symptoms"}
    majority, minority = top["weights"]
    assert minority > 0.5 > -0.5 > majority  # caution-first (the minority) wants escalation
    assert votes_only.fit_summary_["diagnostics"]["response_features"] is False


def test_above_the_size_limit_features_are_skipped_and_the_fit_says_so() -> None:
    world = simulate_world(WorldConfig(n_comparisons=600, seed=2))
    frame = model_frame_from_world(world.judgments, world.pairs, world.responses)
    model = AnnotatorModel(n_schools=2, response_features_max_comparisons=500).fit(frame)
    d = model.fit_summary_["diagnostics"]
    assert d["response_features"] is False
    assert any("response features skipped" in w and "600" in w for w in d["warnings"])
