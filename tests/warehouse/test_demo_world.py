"""Tests of the seeded demo-world simulator and its ground truth."""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from dissensus.warehouse.contract import CHOICES, CONTRACT_COLUMNS
from dissensus.warehouse.demo import (
    DemoWorld,
    WorldConfig,
    iter_world_chunks,
    simulate_world,
    write_world,
)
from dissensus.warehouse.ids import pair_id_for_texts, response_id, text_id

N = 6_000


@pytest.fixture(scope="module")
def world() -> DemoWorld:
    return simulate_world(WorldConfig(n_comparisons=N, seed=11))


@pytest.fixture(scope="module")
def judged(world: DemoWorld) -> pl.DataFrame:
    """Truth judgments joined with reviewer flags and pair kinds."""
    flags = world.reviewers.select("reviewer_id", "is_rushed", "is_position_biased")
    return world.judgments.join(flags, on="reviewer_id").join(
        world.pairs.select("pair_id", "kind"), on="pair_id"
    )


def test_same_seed_same_world_and_different_seed_differs() -> None:
    first = simulate_world(n_comparisons=800, seed=3)
    again = simulate_world(WorldConfig(n_comparisons=800, seed=3))
    for name in ("comparisons", "reviewers", "pairs", "judgments", "responses"):
        assert_frame_equal(getattr(first, name), getattr(again, name))
    other = simulate_world(n_comparisons=800, seed=4)
    assert not first.comparisons.equals(other.comparisons)
    assert first.comparisons["prompt"].to_list() != other.comparisons["prompt"].to_list()


def test_rows_follow_the_contract(world: DemoWorld) -> None:
    rows = world.comparisons
    assert rows.height == N
    assert set(CONTRACT_COLUMNS) <= set(rows.columns)
    assert "reviewer_tenure_months" in rows.columns
    assert set(rows["choice"].unique()) <= set(CHOICES)
    assert set(rows["shown_first"].unique()) == {"a", "b"}
    assert rows["comparison_id"].is_unique().all()
    assert rows["comparison_id"][0] == "cmp-0000001"
    assert rows["reviewer_id"].str.contains(r"^rev-\d{4}$").all()
    assert set(rows["category"].unique()) == {
        "scheduling",
        "cancellation",
        "billing",
        "account_access",
        "urgent_symptoms",
    }
    assert set(rows["strength"].unique()) <= {1, 2, 3}
    assert set(rows["reviewer_pool"].unique()) <= {"vendor-north", "vendor-south", "in-house"}
    assert rows["created_at"].is_sorted()
    assert set(rows["batch"].unique()) == {f"2026-W{w}" for w in range(14, 22)}
    versions = rows.group_by("batch").agg(pl.col("guideline_version").unique())
    for batch, version in versions.iter_rows():
        assert version == (["v1"] if batch < "2026-W18" else ["v2"])
    assert (rows["prompt_id"] == rows["prompt"].map_elements(text_id, pl.String)).all()
    tags = pl.concat([rows["response_a_tags"], rows["response_b_tags"]]).drop_nulls()
    allowed = {"refusal", "escalation", "hallucination", "hedge", "appointment_offer"}
    assert set(tags.str.split(",").explode().unique()) == allowed
    assert set(rows["response_a_model"].unique()) == {
        "assistant-v1",
        "assistant-v2",
        "assistant-v3",
    }


def test_texts_are_varied_and_realistic(world: DemoWorld) -> None:
    rows = world.comparisons
    replies = pl.concat([rows["response_a"], rows["response_b"]]).unique()
    assert replies.len() > 800
    assert rows["prompt"].n_unique() > 200
    pattern = re.compile(r"\b(reply|response|prompt)\s*[A-Z]?\d+\b", re.IGNORECASE)
    assert not any(pattern.search(t) for t in replies.to_list())
    words = replies.str.split(" ").list.len()
    assert words.median() > 15
    assert words.max() > 3 * words.min()
    urgent = rows.filter(pl.col("category") == "urgent_symptoms")["prompt"]
    symptom = (
        r"chest|breath|headache|numbness|speech|faint|blood|fever|heart|stomach|vision|leg|arm"
    )
    assert urgent.str.contains(symptom).all()
    escalating = rows.filter(pl.col("response_a_tags").str.contains("escalation"))["response_a"]
    assert escalating.str.contains(r"911|urgent care|emergency|ER\b").all()


def test_pair_ids_and_orientation_match_the_rows(world: DemoWorld) -> None:
    rows, truth = world.comparisons, world.judgments
    assert rows["comparison_id"].to_list() == truth["comparison_id"].to_list()
    ids = [
        pair_id_for_texts(p, a, b)
        for p, a, b in rows.select("prompt", "response_a", "response_b").iter_rows()
    ]
    assert ids == truth["pair_id"].to_list()
    pairs = world.pairs
    assert pairs["pair_id"].is_unique().all()
    assert (pairs["response_1_id"] < pairs["response_2_id"]).all()
    sample = rows.head(300).join(truth, on="comparison_id").join(pairs, on="pair_id")
    for row in sample.iter_rows(named=True):
        a_id = response_id(text_id(row["prompt"]), text_id(row["response_a"]))
        expected = row["response_1_id"] if row["response_a_is_response_1"] else row["response_2_id"]
        assert a_id == expected
        sign = 1 if row["response_a_is_response_1"] else -1
        assert row["choice"] == {1: "a", -1: "b", 0: "tie"}[row["outcome"] * sign]
        first_is_a = row["shown_first"] == "a"
        assert row["first_shown_is_response_1"] == (first_is_a == row["response_a_is_response_1"])


def test_shares_are_close_to_the_config(world: DemoWorld) -> None:
    config, pairs, reviewers = world.config, world.pairs, world.reviewers
    assert pairs["contested"].mean() == pytest.approx(config.contested_share, abs=0.01)
    assert pairs["ambiguous"].mean() == pytest.approx(config.ambiguous_share, abs=0.01)
    assert reviewers.height == N // 40
    step = 1 / reviewers.height
    assert reviewers["is_rushed"].mean() == pytest.approx(config.rushed_share, abs=step)
    assert (reviewers["school"] == "caution_first").mean() == pytest.approx(
        config.minority_share, abs=step
    )
    strongly_biased = reviewers.filter(~pl.col("is_rushed"))["is_position_biased"].sum()
    assert strongly_biased / reviewers.height == pytest.approx(
        config.position_biased_share, abs=step
    )
    rushed = reviewers.filter(pl.col("is_rushed"))
    assert rushed["lapse_rate"].min() >= 0.30
    assert reviewers.filter(~pl.col("is_rushed"))["lapse_rate"].max() <= 0.08
    assert (rushed["lapse_tilt"] == 0.75).sum() == round(rushed.height / 2)
    gold = world.comparisons["gold_choice"].is_not_null().mean()
    assert gold == pytest.approx(config.gold_share, abs=0.01)


def test_kinds_agree_with_margins(world: DemoWorld) -> None:
    pairs = world.pairs
    access, caution = pairs["margin_access_first"], pairs["margin_caution_first"]
    clear = pairs["kind"] == "clear"
    assert ((access * caution > 0) & (access.abs() >= 1) & (caution.abs() >= 1) | ~clear).all()
    contested = pairs["contested"]
    assert ((access * caution < 0) & (access.abs() >= 1) & (caution.abs() >= 1) | ~contested).all()
    ambiguous = pairs["ambiguous"]
    assert ((access.abs() < 0.3) & (caution.abs() < 0.3) | ~ambiguous).all()
    consensus = 0.65 * access + 0.35 * caution
    assert np.allclose(pairs["consensus_margin"].to_numpy(), consensus.to_numpy())
    assert (pairs["category"].filter(contested) == "urgent_symptoms").mean() > 0.5


def test_votes_per_pair_and_repeats(world: DemoWorld) -> None:
    pairs, truth = world.pairs, world.judgments
    assert pairs["n_votes"].min() >= 3
    assert pairs["n_votes"].max() <= 8
    assert pairs["n_judgments"].sum() == N
    first_looks = truth.filter(~pl.col("is_repeat"))
    assert first_looks.select("reviewer_id", "pair_id").is_unique().all()
    repeats = truth.filter(pl.col("is_repeat"))
    assert repeats.height == round(world.config.repeat_share * N)
    original = repeats.join(truth, left_on="repeat_of", right_on="comparison_id", suffix="_orig")
    assert (original["reviewer_id"] == original["reviewer_id_orig"]).all()
    assert (original["pair_id"] == original["pair_id_orig"]).all()
    assert (original["comparison_id"] > original["repeat_of"]).all()
    swapped = original["first_shown_is_response_1"] != original["first_shown_is_response_1_orig"]
    assert swapped.sum() == pytest.approx(repeats.height / 2, abs=1)
    workload = world.reviewers["n_comparisons"]
    assert workload.sum() == N
    assert workload.max() > 4 * workload.median()


def test_rushed_reviewers_agree_less_with_their_school(judged: pl.DataFrame) -> None:
    decided = judged.filter(pl.col("kind") != "ambiguous", pl.col("outcome") != 0)
    agreement = decided.group_by("is_rushed").agg(
        ((pl.col("outcome") > 0) == (pl.col("margin") > 0)).mean().alias("agree")
    )
    agree = dict(agreement.iter_rows())
    assert agree[False] > 0.85
    assert agree[False] - agree[True] > 0.08


def test_position_biased_reviewers_pick_the_first_shown(judged: pl.DataFrame) -> None:
    decided = judged.filter(pl.col("outcome") != 0).with_columns(
        first_won=(pl.col("outcome") > 0) == pl.col("first_shown_is_response_1")
    )
    biased = decided.filter(pl.col("is_position_biased"), ~pl.col("is_rushed"))["first_won"]
    others = decided.filter(~pl.col("is_position_biased"), ~pl.col("is_rushed"))["first_won"]
    assert biased.mean() > 0.57
    assert others.mean() == pytest.approx(0.5, abs=0.03)


def test_rushed_reviewers_are_fast_and_terse(world: DemoWorld) -> None:
    rows = world.comparisons.join(
        world.reviewers.select("reviewer_id", "is_rushed"), on="reviewer_id"
    )
    speed = dict(rows.group_by("is_rushed").agg(pl.col("seconds_spent").median()).iter_rows())
    assert 50 < speed[False] < 100
    assert 6 < speed[True] < 20
    terse = rows.group_by("is_rushed").agg(pl.col("rationale").fill_null("").str.len_chars().mean())
    lengths = dict(terse.iter_rows())
    assert lengths[True] < lengths[False] / 3


def test_null_world_has_no_contested_pairs() -> None:
    null = simulate_world(n_comparisons=1_500, n_schools=1, seed=2)
    assert null.schools == ["access_first"]
    assert not null.pairs["contested"].any()
    assert "margin_caution_first" not in null.pairs.columns
    assert (null.reviewers["school"] == "access_first").all()
    assert null.pairs["ambiguous"].mean() == pytest.approx(0.15, abs=0.01)


def test_three_schools() -> None:
    three = simulate_world(n_comparisons=1_500, n_schools=3, seed=2)
    assert three.schools == ["access_first", "caution_first", "empathy_first"]
    assert set(three.reviewers["school"].unique()) == set(three.schools)
    assert three.pairs["contested"].mean() == pytest.approx(0.20, abs=0.01)


def test_no_rushed_reviewers_when_share_is_zero() -> None:
    calm = simulate_world(n_comparisons=1_500, rushed_share=0.0, seed=5)
    assert not calm.reviewers["is_rushed"].any()
    assert calm.reviewers["lapse_rate"].max() <= 0.08
    assert (calm.reviewers["lapse_tilt"] == 0.5).all()


def test_lapses_that_lean_pick_the_longer_reply_and_change_nothing_else() -> None:
    plain = simulate_world(n_comparisons=2_000, seed=3)
    leaning = simulate_world(n_comparisons=2_000, seed=3, lapse_length_lean=1.0)
    # the same reviewers, pairs, texts and careful judgments; only the lapses' picks move
    assert_frame_equal(plain.pairs, leaning.pairs)
    assert (plain.judgments["careful"] == leaning.judgments["careful"]).all()
    careful = plain.judgments["careful"].to_numpy()
    assert (plain.judgments["outcome"].to_numpy()[careful]
            == leaning.judgments["outcome"].to_numpy()[careful]).all()
    assert (~leaning.judgments["careful"]).sum() > 50
    assert _lapses_picking_the_longer(leaning) == 1.0
    shorter = simulate_world(n_comparisons=2_000, seed=3, lapse_length_lean=-1.0)
    assert _lapses_picking_the_longer(shorter) == 0.0
    # in the demo world a lapse is a coin: about half of them pick the longer reply
    assert 0.35 < _lapses_picking_the_longer(plain) < 0.65


def _lapses_picking_the_longer(world: DemoWorld) -> float:
    chars = dict(zip(world.responses["response_id"], world.responses["text"].str.len_chars(),
                     strict=True))
    lapses = world.judgments.join(world.pairs, on="pair_id").filter(~pl.col("careful"))
    longer_is_1 = np.array([chars[a] > chars[b] for a, b in
                            zip(lapses["response_1_id"], lapses["response_2_id"], strict=True)])
    return float(((lapses["outcome"].to_numpy() == 1) == longer_is_1).mean())


@pytest.mark.parametrize(
    ("fmt", "compress"),
    [("jsonl", False), ("jsonl", True), ("csv", False), ("csv", True), ("parquet", False)],
)
def test_write_world_round_trip(tmp_path: Path, fmt: str, compress: bool) -> None:
    small = simulate_world(n_comparisons=400, seed=9)
    paths = write_world(small, tmp_path, fmt=fmt, compress=compress)
    path = paths["comparisons"]
    assert path.name == f"comparisons.{fmt}" + (".gz" if compress else "")
    data = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
    if fmt == "jsonl":
        back = pl.read_ndjson(io.BytesIO(data), schema=small.comparisons.schema)
    elif fmt == "csv":
        back = pl.read_csv(io.BytesIO(data), schema=small.comparisons.schema)
    else:
        back = pl.read_parquet(path)
    assert_frame_equal(back, small.comparisons)
    for name in ("reviewers", "pairs", "judgments", "responses"):
        assert_frame_equal(pl.read_parquet(paths[name]), getattr(small, name))
    meta = json.loads(paths["world"].read_text())
    assert meta["config"]["n_comparisons"] == 400
    assert meta["schools"] == small.schools


def test_chunks_equal_the_whole_frame() -> None:
    config = WorldConfig(n_comparisons=1_000, seed=8)
    chunks = list(iter_world_chunks(config, chunk_size=300))
    assert [c.height for c in chunks] == [300, 300, 300, 100]
    assert_frame_equal(pl.concat(chunks), simulate_world(config).comparisons)


@pytest.mark.parametrize(
    "overrides",
    [
        {"minority_share": 1.5},
        {"contested_share": 0.7, "ambiguous_share": 0.5},
        {"n_comparisons": 0},
        {"votes_per_pair": (5, 2)},
        {"n_schools": 4},
        {"lapse_length_lean": 1.2},
        {"lapse_length_lean": -1.5},
    ],
)
def test_invalid_configs_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        simulate_world(**overrides)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_comparisons=st.integers(1, 400),
    n_reviewers=st.one_of(st.none(), st.integers(1, 40)),
    n_schools=st.integers(1, 3),
    shares=st.tuples(*(st.floats(0.0, 0.5) for _ in range(6))),
    votes=st.tuples(st.integers(1, 4), st.integers(0, 5)),
    seed=st.integers(0, 2**16),
)
def test_any_small_config_gives_consistent_frames(
    n_comparisons: int,
    n_reviewers: int | None,
    n_schools: int,
    shares: tuple[float, ...],
    votes: tuple[int, int],
    seed: int,
) -> None:
    minority, rushed, biased, contested, ambiguous, repeat = shares
    low, extra = votes
    config = WorldConfig(
        n_comparisons=n_comparisons,
        n_reviewers=n_reviewers,
        n_schools=n_schools,
        minority_share=minority,
        rushed_share=rushed,
        position_biased_share=biased,
        contested_share=contested,
        ambiguous_share=ambiguous,
        votes_per_pair=(low, low + extra),
        repeat_share=repeat,
        seed=seed,
    )
    w = simulate_world(config)
    rows, truth, pairs, reviewers = w.comparisons, w.judgments, w.pairs, w.reviewers
    assert rows.height == truth.height == n_comparisons
    assert rows["comparison_id"].to_list() == truth["comparison_id"].to_list()
    assert rows["comparison_id"].is_unique().all()
    assert pairs["pair_id"].is_unique().all()
    assert set(truth["pair_id"]) == set(pairs["pair_id"])
    assert set(truth["reviewer_id"]) <= set(reviewers["reviewer_id"])
    assert reviewers.height == config.reviewer_count
    assert reviewers["n_comparisons"].sum() == n_comparisons
    assert pairs["n_judgments"].sum() == n_comparisons
    assert pairs["n_votes"].max() <= min(low + extra, config.reviewer_count)
    assert truth.filter(~pl.col("is_repeat")).select("reviewer_id", "pair_id").is_unique().all()
    if n_schools == 1:
        assert not pairs["contested"].any()
    assert (pairs["kind"] == "contested").to_list() == pairs["contested"].to_list()
    sign = np.where(truth["response_a_is_response_1"].to_numpy(), 1, -1)
    expected = np.array(["b", "tie", "a"])[truth["outcome"].to_numpy() * sign + 1]
    assert rows["choice"].to_list() == expected.tolist()
    lapses = truth.filter(~pl.col("careful"))
    assert (lapses["outcome"] != 0).all()
