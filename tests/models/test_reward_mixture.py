"""The latent-class mixture reward kind, the schools' disagreement probability and the
architecture chosen by validation."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from dissensus.analytics.jobs.reward import (
    evaluate_run,
    predicted_disagreements,
    score_run,
    train_run,
)
from dissensus.models.reward.config import MixtureConfig, make_config
from dissensus.models.reward.data import PreferenceData
from dissensus.models.reward.evaluate import disagreement_probability
from dissensus.models.reward.mixture import memberships, train_mixture
from dissensus.models.reward.selection import CANDIDATES
from dissensus.models.reward.train import Tensors, response_outputs
from dissensus.warehouse.db import connect_memory
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.ingest import ingest_file

torch.set_num_threads(1)


def _two_school_votes(seed: int = 0) -> tuple[PreferenceData, np.ndarray, np.ndarray,
                                              np.ndarray]:
    """40 reviewers in two schools that weigh the first embedding axis oppositely (and agree on
    the second); each judges 80 pairs of 300 replies. Returns the data, the embeddings, each
    reviewer's true school and the two schools' utility weights."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(300, 6)).astype(np.float32)
    w = np.array([[2.5, 1.0, 0, 0, 0, 0], [-2.5, 1.0, 0, 0, 0, 0]])
    school = np.repeat([0, 1], 20)
    rows = []
    for r in range(40):
        for _ in range(80):
            a, b = rng.choice(300, 2, replace=False)
            p = 1 / (1 + np.exp(-(emb[a] - emb[b]) @ w[school[r]]))
            rows.append((f"r{r:02d}", int(a), int(b), float(rng.random() < p)))
    frame = pl.DataFrame(rows, schema=["reviewer_id", "r1_idx", "r2_idx", "y"], orient="row")
    n = frame.height
    split = np.where(rng.random(n) < 0.15, "validation", "train")
    comparisons = frame.with_columns(
        comparison_id=pl.int_range(n).cast(pl.String), pair_id=pl.int_range(n).cast(pl.String),
        prompt_idx=pl.lit(0, dtype=pl.Int64), y=pl.col("y").cast(pl.Float32),
        tie=pl.lit(False), weight=pl.lit(1.0), school_weights=pl.lit(None, pl.List(pl.Float64)),
        split=pl.Series(split))
    texts = pl.DataFrame({"text_id": [str(i) for i in range(300)], "body": ["x"] * 300,
                          "n_chars": [1] * 300})
    return PreferenceData(comparisons, texts, 2, None), emb, school, w


def test_the_mixture_finds_the_schools_from_a_random_start() -> None:
    data, emb, school, w = _two_school_votes()
    config = MixtureConfig(encoder="hashing", architecture="linear", lr=0.05, epochs=40,
                           round_epochs=20, em_rounds=6, start_from="random")
    tensors = Tensors.build(data, emb, use_weights=False)
    result, state = train_mixture(tensors, data, config, log=lambda _m: None)
    learned = state.memberships.argmax(axis=1)
    assert adjusted_rand_score(school, learned) == 1.0
    assert state.initialised_from == "random"
    assert np.allclose(state.shares, [0.5, 0.5], atol=0.05)
    # each head follows its school on fresh pairs, and the disagreement probability finds the
    # pairs the schools split on
    rng = np.random.default_rng(9)
    a, b = rng.choice(300, 400), rng.choice(300, 400)
    e = torch.as_tensor(emb)
    zero = torch.zeros(400, dtype=torch.long)
    out = (response_outputs(result.model, e, zero, torch.as_tensor(a))
           - response_outputs(result.model, e, zero, torch.as_tensor(b))).numpy()
    margins = (emb[a] - emb[b]) @ w.T  # (400, 2) true school margins
    head_of = [int(np.argmax(np.bincount(learned[school == k], minlength=2))) for k in (0, 1)]
    for k in (0, 1):
        agree = np.mean(np.sign(out[:, head_of[k]]) == np.sign(margins[:, k]))
        assert agree > 0.9, (k, agree)
    p = 1 / (1 + np.exp(-out[:, [head_of[0], head_of[1]]]))
    split_on = np.sign(margins[:, 0]) != np.sign(margins[:, 1])
    auc = roc_auc_score(split_on, disagreement_probability(p, np.array([0.5, 0.5])))
    assert auc > 0.85, auc


def test_the_e_step_weighs_a_reviewers_votes_against_the_shares() -> None:
    ll = np.array([[-0.1, -2.0], [-0.2, -1.5], [-3.0, -0.1]])
    gamma, shares = memberships(ll, np.array([0, 0, 1]), 2, np.array([0.5, 0.5]), 0.02)
    assert gamma[0, 0] > 0.95 and gamma[1, 1] > 0.9
    assert np.allclose(gamma.sum(axis=1), 1) and np.isclose(shares.sum(), 1)
    _, floored = memberships(np.array([[0.0, -50.0]]), np.array([0]), 1,
                             np.array([0.5, 0.5]), 0.05)
    assert floored.min() >= 0.05 - 1e-12  # a school that lost everyone can come back


def test_disagreement_probability_reads_the_school_heads() -> None:
    p = np.array([[0.99, 0.98], [0.99, 0.01], [0.5, 0.5]])
    d = disagreement_probability(p, np.array([0.6, 0.4]))
    assert d[0] < 0.05 and d[1] > 0.95 and d[2] == pytest.approx(0.5)
    three = disagreement_probability(np.array([[0.9, 0.9, 0.1]]), np.ones(3))
    assert three[0] == pytest.approx((0.18 + 0.82 + 0.82) / 3)


@pytest.fixture(scope="module")
def world_con(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("mixture")
    world = simulate_world(WorldConfig(n_comparisons=1200, seed=4))
    world.comparisons.write_parquet(folder / "c.parquet")
    con = connect_memory()
    ingest_file(con, folder / "c.parquet")
    yield con, folder
    con.close()


def test_auto_architecture_is_chosen_by_validation_and_stored(world_con) -> None:  # type: ignore[no-untyped-def]
    con, folder = world_con
    run = train_run(con, "plain", None, make_config("plain", encoder="hashing", epochs=8,
                                                    patience=3, hidden=32),
                    log=lambda _m: None, cache_folder=folder / "cache",
                    checkpoint_folder=folder / "runs")
    config, metrics = (json.loads(v) for v in con.execute(
        "SELECT config, metrics FROM reward_runs WHERE run_id = ?", [run]).fetchall()[0])
    table = metrics["architecture_selection"]
    assert len(table) == len(CANDIDATES) and sum(r["chosen"] for r in table) == 1
    best = min(table, key=lambda r: r["selection_loss"])
    assert best["chosen"]
    assert config["architecture"] in ("mlp", "linear")  # resolved, never 'auto'
    assert best["candidate"].startswith(config["architecture"])


def test_a_mixture_run_without_a_fit_starts_at_random(world_con) -> None:  # type: ignore[no-untyped-def]
    con, folder = world_con
    run = train_run(con, "mixture", None, {"encoder": "hashing", "epochs": 4, "hidden": 32,
                                           "em_rounds": 2, "round_epochs": 2},
                    log=lambda _m: None, cache_folder=folder / "cache",
                    checkpoint_folder=folder / "runs")
    kind, config, metrics = con.execute(
        "SELECT kind, config, metrics FROM reward_runs WHERE run_id = ?", [run]).fetchall()[0]
    metrics = json.loads(metrics)
    assert kind == "mixture" and json.loads(config)["architecture"] == "linear"
    assert metrics["mixture"]["initialised_from"] == "random"
    assert metrics["training"]["heads"] == ["school_0", "school_1", "consensus"]
    assert len(metrics["mixture"]["reviewers"]["reviewer_id"]) > 10
    # evaluated again later, the run is scored against its own schools, as at training time
    again = evaluate_run(con, run, log=lambda _m: None, cache_folder=folder / "cache")
    assert set(again["accuracy_per_school"]) == {"school_0", "school_1"}
    assert again["accuracy_per_school"] == pytest.approx(metrics["accuracy_per_school"])
    # the pairs its school heads most expect the schools to split on, from the stored scores
    score_run(con, run, log=lambda _m: None, cache_folder=folder / "cache")
    top = predicted_disagreements(con, run, limit=10)
    assert top.height == 10 and {"prompt", "response_1", "response_2"} <= set(top.columns)
    p = top["p_disagree"].to_numpy()
    assert ((p >= 0) & (p <= 1)).all() and (np.diff(p) <= 1e-12).all()
    heads = np.column_stack([top["p_school_0"].to_numpy(), top["p_school_1"].to_numpy()])
    shares = metrics["disagreement"]["school_shares"]
    assert np.allclose(p, disagreement_probability(heads, np.asarray(shares)))
