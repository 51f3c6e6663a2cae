"""The oracles: ceilings that know the simulator's truth must actually use it."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from dissensus.models.annotator.oracle import (
    _cavity_careful_probs,
    margin_blind_reliability_oracle,
    oracle_inputs,
    pluralism_oracle,
    reliability_oracle,
    school_oracle,
)
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.demo.schools import school_shares


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return simulate_world(WorldConfig(n_comparisons=3000, seed=2))


def test_reliability_oracle_ranks_rushed_reviewers_first(world) -> None:  # type: ignore[no-untyped-def]
    truth = oracle_inputs(world.judgments, world.reviewers, world.pairs)
    table = reliability_oracle(truth, world.config.tie_threshold, world.config.rushed_share)
    table = table.join(world.reviewers.select("reviewer_id", "is_rushed", "lapse_rate",
                                              "n_comparisons"), on="reviewer_id")
    assert roc_auc_score(table["is_rushed"], -table["reliability"]) > 0.9
    busy = table.filter(pl.col("n_comparisons") >= 10)
    inside = ((1 - busy["lapse_rate"] >= busy["reliability_low"])
              & (1 - busy["lapse_rate"] <= busy["reliability_high"])).mean()
    assert inside >= 0.85  # exact posterior intervals under the true prior


def test_pluralism_oracle_separates_contested_pairs(world) -> None:  # type: ignore[no-untyped-def]
    truth = oracle_inputs(world.judgments, world.reviewers, world.pairs)
    scores = pluralism_oracle(truth, world.config.tie_threshold)
    auc = roc_auc_score(scores["contested"], scores["log_lr"])
    assert 0.75 < auc < 0.99  # 3-8 votes per pair: far from perfect even knowing everything


def test_pluralism_oracle_needs_both_kinds(world) -> None:  # type: ignore[no-untyped-def]
    one = simulate_world(WorldConfig(n_comparisons=400, n_schools=1, seed=0))
    truth = oracle_inputs(one.judgments, one.reviewers, one.pairs)
    with pytest.raises(ValueError, match="both contested and uncontested"):
        pluralism_oracle(truth, one.config.tie_threshold)


def test_margin_blind_oracle_never_reads_the_pairs_own_margins(world) -> None:  # type: ignore[no-untyped-def]
    truth = oracle_inputs(world.judgments, world.reviewers, world.pairs)
    tau = world.config.tie_threshold
    before = _cavity_careful_probs(truth, tau)
    j = int(truth.pair[0])
    margins = truth.margins.copy()
    margins[j] = 50.0  # a pair's own margins made absurd: its own votes must not notice
    after = _cavity_careful_probs(dataclasses.replace(truth, margins=margins), tau)
    on_j = truth.pair == j
    np.testing.assert_array_equal(before[on_j], after[on_j])
    assert not np.array_equal(before[~on_j], after[~on_j])  # other pairs see it as a candidate


def test_margin_blind_oracle_is_a_looser_ceiling(world) -> None:  # type: ignore[no-untyped-def]
    truth = oracle_inputs(world.judgments, world.reviewers, world.pairs)
    args = (truth, world.config.tie_threshold, world.config.rushed_share)
    rushed = world.reviewers.sort("reviewer_id")["is_rushed"]
    knows = roc_auc_score(rushed, -reliability_oracle(*args)["reliability"])
    blind = roc_auc_score(rushed, -margin_blind_reliability_oracle(*args)["reliability"])
    assert 0.75 < blind < knows


def test_school_oracle_places_careful_reviewers(world) -> None:  # type: ignore[no-untyped-def]
    truth = oracle_inputs(world.judgments, world.reviewers, world.pairs)
    shares = school_shares(world.config.n_schools, world.config.minority_share)
    careful = ~world.reviewers.sort("reviewer_id")["is_rushed"].to_numpy()
    aris = {}
    for known in (True, False):
        table = school_oracle(truth, world.config.tie_threshold, shares, margins_known=known)
        assert table["school_probability"].min() >= 1 / len(shares) - 1e-12
        found = table["school"].to_numpy()
        aris[known] = adjusted_rand_score(truth.school[careful], found[careful])
    assert aris[True] > 0.6
    assert aris[False] < aris[True]
