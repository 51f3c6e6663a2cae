"""The demo traffic simulator's truth: each school's utility of every served reply, and the
unserved alternatives an audit benchmark pairs single turns with."""

from __future__ import annotations

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from dissensus.warehouse.demo.schools import MODELS, SCHOOL_NAMES, UTILITY_WEIGHTS
from dissensus.warehouse.demo.traffic import NEW_TYPE, TrafficConfig, simulate_traffic

CONFIG = {"turns_per_week": 80, "n_weeks": 4, "drift_from_week": 2, "seed": 3}


def test_alternatives_leave_the_rows_unchanged() -> None:
    rows, truth = simulate_traffic(TrafficConfig(**CONFIG))
    rows_alt, truth_alt = simulate_traffic(TrafficConfig(**CONFIG, alternatives=True))
    assert_frame_equal(rows, rows_alt)
    assert_frame_equal(truth, truth_alt.select(truth.columns))
    assert {f"utility_{s}" for s in SCHOOL_NAMES} <= set(truth.columns)
    assert "alt_response" not in truth.columns


def test_alternative_is_an_unserved_models_reply() -> None:
    rows, truth = simulate_traffic(TrafficConfig(**CONFIG, alternatives=True))
    joined = rows.join(truth.drop("category"), on="traffic_id")
    assert joined["alt_model"].is_in(list(MODELS)).all()
    assert (joined["alt_model"] != joined["model"]).all()
    # an A/B prompt's two turns share one alternative, by the model neither served
    ab = joined.filter(pl.col("created_at").str.slice(0, 16).is_duplicated())
    assert ab.height > 0
    for _, group in ab.group_by("prompt", pl.col("created_at").str.slice(0, 16)):
        if group.height == 2:
            assert group["alt_response"].n_unique() == 1
            assert group["alt_model"][0] not in group["model"].to_list()
    # never the served text itself (refill replies come from four templates): a reviewer
    # cannot compare a reply with itself
    assert (joined["alt_response"] != joined["response"]).all()
    assert joined["alt_utility_access_first"].null_count() == 0


def test_utilities_follow_the_schools_weights() -> None:
    rows, truth = simulate_traffic(TrafficConfig(**CONFIG, alternatives=True))
    joined = rows.join(truth.drop("category"), on="traffic_id")
    # refusals cost every school; a refill reply that refuses is worth less than one that acts
    refill = joined.filter(pl.col("category") == NEW_TYPE)
    refused = refill["response_tags"].list.contains("refusal").to_numpy()
    acts = refill["response_tags"].list.contains("appointment_offer").to_numpy()
    utility = refill["utility_access_first"].to_numpy()
    assert refused.any() and acts.any()
    weights = UTILITY_WEIGHTS[0, 0]
    gap = weights[1] - weights[4]  # offer minus refusal, non-urgent weights of access_first
    assert abs(utility[acts].mean() - utility[refused].mean() - gap) < 0.3
    # urgent replies that escalate please caution_first far more than access_first
    urgent = joined.filter(pl.col("category") == "urgent_symptoms")
    escalates = urgent["response_tags"].list.contains("escalation").to_numpy()
    lead = (urgent["utility_caution_first"] - urgent["utility_access_first"]).to_numpy()
    assert np.mean(lead[escalates]) - np.mean(lead[~escalates]) > 3.0
