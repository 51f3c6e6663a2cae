"""The oracles: ceilings that know the simulator's truth must actually use it."""

from __future__ import annotations

import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from models.annotator.oracle import oracle_inputs, pluralism_oracle, reliability_oracle
from warehouse.demo import WorldConfig, simulate_world


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
