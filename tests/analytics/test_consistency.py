"""Per-reviewer consistency checks on small ingested warehouses with known answers."""

from __future__ import annotations

from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissensus.analytics import consistency as cs
from dissensus.analytics.same_pairs import PRIOR_VOTES
from dissensus.warehouse.errors import EmptyDataError


@pytest.fixture
def vote(vote):
    """The shared row helper with this module's defaults: day 1 (hour = item % 24), 40 s."""
    return partial(vote, day=1, seconds_spent=40.0)


def by_id(frame, column: str) -> dict:
    return dict(zip(frame["reviewer_id"], frame[column], strict=True))


def test_position_bias_binomial(warehouse, vote) -> None:
    rows = []
    for i in range(60):
        first = "a" if i % 2 else "b"
        rows.append(vote("biased", i, first if i % 10 else ("b" if first == "a" else "a"),
                         shown_first=first))  # picks the first-shown reply 54 of 60 times
        for j in range(5):  # always A, whatever order
            rows.append(vote(f"balanced{j}", i, "a", shown_first=first))
    out = cs.position_bias(warehouse(rows))
    flagged, rate = by_id(out, "position_biased"), by_id(out, "first_rate")
    assert flagged == {**{f"balanced{j}": False for j in range(5)}, "biased": True}
    assert rate["biased"] == pytest.approx(54 / 60) and rate["balanced0"] == pytest.approx(0.5)
    # the others all pick A, shown first on half the pairs: they predict 1/2 for the biased one
    expected = by_id(out, "expected_first_rate")
    assert expected["biased"] == pytest.approx(0.5)
    p = by_id(out, "p_value")
    from scipy.stats import binomtest

    assert p["biased"] == pytest.approx(binomtest(54, 60, 0.5).pvalue)
    assert "position-biased" in by_id(out, "verdict")["biased"]


def test_a_display_order_that_follows_quality_is_no_position_bias(warehouse, vote) -> None:
    """The better reply (A) is shown first on 48 of 60 pairs: five careful reviewers pick A
    every time, so 80% of their picks are the first-shown reply, yet they pick it no more than
    the others do on the same pairs; one reviewer who picks the first-shown reply every time is
    still biased against them."""
    rows = []
    for i in range(60):
        first = "a" if i % 5 else "b"
        for j in range(5):
            rows.append(vote(f"careful{j}", i, "a", shown_first=first))
        rows.append(vote("first", i, first, shown_first=first))
    out = cs.position_bias(warehouse(rows))
    rate, expected = by_id(out, "first_rate"), by_id(out, "expected_first_rate")
    assert rate["careful0"] == pytest.approx(0.8) and expected["careful0"] > 0.7
    assert by_id(out, "position_biased") == {
        **{f"careful{j}": False for j in range(5)}, "first": True}


def test_self_consistency_on_repeats(warehouse, vote) -> None:
    rows = [vote("r", i, "a", day=1) for i in range(4)]
    rows += [vote("r", 0, "a", day=5, comparison_id="r0b"),              # same, same order
             vote("r", 1, "a", shown_first="b", day=5, comparison_id="r1b"),  # same, swapped
             vote("r", 2, "b", shown_first="b", day=5, comparison_id="r2b"),  # changed, swapped
             vote("r", 3, "b", day=5, comparison_id="r3b")]               # changed
    out = cs.self_consistency(warehouse(rows)).row(0, named=True)
    assert (out["n_repeats"], out["n_consistent"]) == (4, 2)
    assert (out["n_swapped"], out["n_swapped_consistent"]) == (2, 1)
    assert out["consistency_low"] < 0.5 < out["consistency_high"]


def test_repeats_of_close_pairs_are_not_held_to_the_bar_of_clear_ones(warehouse, vote) -> None:
    """Two reviewers give the same answer on 3 of 10 repeats: on pairs the others split evenly
    that is about what a careful reviewer does (a second look at a coin flip), on pairs the
    others all call the same way it is inconsistent."""
    rows = []
    for i in range(10):
        rows += [vote(f"o{j}", i, "a" if j % 2 else "b", day=1) for j in range(6)]  # split
        rows += [vote(f"o{j}", 20 + i, "a", day=1) for j in range(6)]  # agreed
        for who, item in (("close", i), ("clear", 20 + i)):
            rows.append(vote(who, item, "a", day=2))
            rows.append(vote(who, item, "a" if i < 3 else "b", day=9,
                             comparison_id=f"{who}{item}again"))
    out = cs.self_consistency(warehouse(rows))
    consistency, expected = by_id(out, "consistency"), by_id(out, "expected_consistency")
    assert consistency == {"close": 0.3, "clear": 0.3}
    assert expected["close"] < 0.55 < 0.7 < expected["clear"]
    assert by_id(out, "inconsistent") == {"close": False, "clear": True}


def test_gold_accuracy_and_ties(warehouse, vote) -> None:
    rows = [vote("good", i, "a", gold_choice="a") for i in range(10)]
    rows += [vote("poor", i, "a" if i < 2 else "b", gold_choice="a") for i in range(10)]
    rows += [vote("tier", 100 + i, "tie") for i in range(10)]
    rows += [vote(f"x{j}", 200 + i, "a") for j in range(4) for i in range(10)]
    con = warehouse(rows)
    gold = cs.gold_accuracy(con)
    assert by_id(gold, "gold_accuracy") == {"good": 1.0, "poor": 0.2}
    assert by_id(gold, "fails_gold") == {"good": False, "poor": True}
    ties = cs.tie_use(con)
    assert by_id(ties, "tie_overuse")["tier"] and not by_id(ties, "tie_overuse")["good"]
    assert ties["pool_tie_rate"][0] == pytest.approx(10 / 70)


def test_tie_overuse_is_corrected_for_testing_every_reviewer(warehouse, vote) -> None:
    """28 reviewers say 'tie' 4 times in 40, one 11 times (a chance excess among 30 tests: its
    own p-value is below the level, its q-value is not), one 30 times (a tie-sayer)."""
    from scipy.stats import binom

    counts = {**{f"r{j:02d}": 4 for j in range(28)}, "edge": 11, "tier": 30}
    rows = [vote(r, i, "tie" if i < n else "a") for r, n in counts.items() for i in range(40)]
    ties = cs.tie_use(warehouse(rows))
    pool = sum(counts.values()) / (40 * len(counts))
    assert ties["pool_tie_rate"][0] == pytest.approx(pool)
    assert binom.sf(10, 40, pool) < 0.01 and 2 * pool <= 11 / 40  # the raw test would flag it
    assert by_id(ties, "q_value")["edge"] > 0.01
    assert not by_id(ties, "tie_overuse")["edge"]
    assert by_id(ties, "tie_overuse")["tier"]
    assert sum(by_id(ties, "tie_overuse").values()) == 1


def test_ties_are_weighed_against_the_others_on_the_same_pairs(warehouse, vote) -> None:
    """Four reviewers work only close pairs, where they all say 'tie' a third of the time: four
    times the pool's rate, but no more than the others on those pairs. A tie-sayer on clear pairs,
    where the others almost never say it, still overuses ties."""
    from scipy.stats import binom

    rows = [vote(f"g{j}", i, "tie" if (i + j) % 40 == 0 else "a")
            for j in range(10) for i in range(80)]
    rows += [vote(f"q{j}", 100 + i, "tie" if (i + j) % 3 == 0 else "b")
             for j in range(4) for i in range(30)]
    rows += [vote("tier", i, "tie" if i % 5 < 2 else "a") for i in range(40)]
    ties = cs.tie_use(warehouse(rows))
    pool = ties["pool_tie_rate"][0]
    assert pool == pytest.approx(76 / 960)
    q0 = ties.filter(reviewer_id="q0").row(0, named=True)
    assert q0["tie_rate"] >= 4 * pool and binom.sf(9, 30, pool) < 1e-4  # the pool test flags it
    assert q0["expected_tie_rate"] > 0.2 and q0["verdict"].startswith("says 'tie' 33%")
    assert by_id(ties, "tie_overuse") == {
        **{f"g{j}": False for j in range(10)}, **{f"q{j}": False for j in range(4)}, "tier": True}
    tier = ties.filter(reviewer_id="tier").row(0, named=True)
    assert tier["expected_tie_rate"] < 0.05 and "overuses ties" in tier["verdict"]


def test_speed_and_drift(warehouse, vote) -> None:
    rows = []
    for i in range(60):
        for j in range(3):
            rows.append(vote(f"peer{j}", i, "a", day=1 + i // 3))
        late = i >= 30
        rows.append(vote("drifter", i, "b" if late else "a", day=1 + i // 3,
                         seconds_spent=5.0 if late else 40.0))
    con = warehouse(rows)
    sp = cs.speed(con)
    assert sp["pool_median_seconds"][0] == pytest.approx(40.0)
    dr = cs.drift(con).filter(reviewer_id="drifter").row(0, named=True)
    assert dr["drifting"] and dr["agreement_before"] == 1.0 and dr["agreement_after"] == 0.0
    assert str(dr["change_at"]).startswith("2026-01-10")
    # the peers' agreement falls only because the drifter left the consensus: 1 -> 2/3
    assert cs.drift(con).filter(reviewer_id="peer0")["agreement_after"][0] == pytest.approx(2 / 3)
    series = cs.drift_series(con, "drifter")
    assert series["n_votes"].sum() == 60


def test_reviewer_less_data(warehouse, vote) -> None:
    con = warehouse([vote(None, i, "a") for i in range(3)])
    for fn in (cs.position_bias, cs.tie_use, cs.self_consistency, cs.gold_accuracy, cs.speed,
               cs.drift):
        with pytest.raises(EmptyDataError, match="has a reviewer id"):
            fn(con)


def test_vote_table_matches_the_sql_definition(warehouse, vote) -> None:
    """The vote table (integer sorts, ties broken by comparison_id) equals the SQL window
    definition of the first vote and of the repeat order, with tied and missing times."""
    import numpy as np
    import polars as pl

    from dissensus.analytics.agreement import LOO_SQL, leave_one_out_agreement
    from dissensus.analytics.audit_votes import load_votes

    rng = np.random.default_rng(5)
    rows = []
    for i in range(400):
        choice = str(rng.choice(["a", "b", "tie"]))
        row = vote(f"r{rng.integers(6)}", int(rng.integers(25)), choice,
                   shown_first=str(rng.choice(["a", "b"])),
                   comparison_id=f"c{rng.integers(10**6)}-{i}")
        row["created_at"] = str(rng.choice(["2026-01-01T10:00:00", "2026-01-02T10:00:00"]))
        if i % 17 == 0:
            del row["created_at"]
        rows.append(row)
    con = warehouse(rows)
    votes = load_votes(con)
    got = (votes.frame.with_columns(reviewer_id=votes.ids(votes.frame["r"]))
           .select("reviewer_id", "outcome", "first_shown", "created_at", "k")
           .sort("reviewer_id", "created_at", "k", nulls_last=True))
    want = con.sql("""
        SELECT reviewer_id, outcome, first_shown, created_at,
               row_number() OVER (PARTITION BY reviewer_id, pair_id
                                  ORDER BY created_at NULLS LAST, comparison_id) AS k
        FROM comparisons WHERE has_reviewer
    """).pl().sort("reviewer_id", "created_at", "k", nulls_last=True)
    assert got.sort(got.columns, nulls_last=True).equals(
        want.sort(want.columns, nulls_last=True))
    loo = con.sql(f"SELECT reviewer_id, avg(loo_agreement) AS a FROM ({LOO_SQL}) "
                  "GROUP BY ALL ORDER BY reviewer_id").pl()
    ours = leave_one_out_agreement(con)
    assert np.allclose(ours["loo_agreement"].to_numpy(), loo["a"].to_numpy(), equal_nan=True)
    assert ours["reviewer_id"].to_list() == loo["reviewer_id"].to_list()
    # each reviewer's votes in time order, ties by comparison_id (what drift relies on)
    order = con.sql("SELECT reviewer_id, created_at, outcome FROM comparisons WHERE has_reviewer "
                    "ORDER BY reviewer_id, created_at NULLS LAST, comparison_id").pl()
    mine = votes.frame.select(votes.ids(votes.frame["r"]), "created_at", "outcome")
    assert mine.equals(order.with_columns(pl.col("outcome").cast(mine["outcome"].dtype)))


def test_checks_default_to_the_audit_config() -> None:
    """A check called alone gives the audit's verdict: its defaults are AuditConfig's."""
    import inspect

    from dissensus.analytics.audit_config import AuditConfig
    from dissensus.analytics.audit_drift import drift_from

    cfg = AuditConfig()
    checks = [
        ((cs.position_bias, cs.position_bias_from),
         {"alpha": cfg.position_alpha, "min_effect": cfg.position_min_effect, "level": cfg.level}),
        ((cs.tie_use, cs.tie_use_from),
         {"alpha": cfg.tie_alpha, "overuse_ratio": cfg.tie_overuse_ratio, "level": cfg.level}),
        ((cs.self_consistency, cs.self_consistency_from),
         {"min_consistency": cfg.min_self_consistency, "level": cfg.level}),
        ((cs.gold_accuracy, cs.gold_accuracy_from),
         {"min_accuracy": cfg.min_gold_accuracy, "level": cfg.level}),
        ((cs.speed, cs.speed_from), {"fast_ratio": cfg.fast_ratio}),
        ((cs.drift, drift_from), {"min_segment": cfg.drift_min_segment,
                                  "alpha": cfg.drift_alpha, "min_change": cfg.drift_min_change}),
    ]
    for fns, defaults in checks:
        for fn in fns:
            params = inspect.signature(fn).parameters
            assert {k: params[k].default for k in defaults} == defaults, fn.__name__


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7), st.sampled_from([-1, 0, 1])),
                min_size=1, max_size=60))
def test_the_expected_tie_rate_is_the_others_share_on_the_same_pairs(votes) -> None:
    """Property: each reviewer's expected tie rate lies in [0, 1]; it is the pool's rate where
    nobody else judged their pairs; and it never reads the reviewer's own votes."""
    import numpy as np
    import polars as pl

    from dissensus.analytics.audit_votes import Votes

    r = np.array([v[0] for v in votes])
    frame = pl.DataFrame({"r": r, "p": [v[1] for v in votes], "outcome": [v[2] for v in votes]})
    ids = pl.Series("reviewer_id", [f"r{i}" for i in range(6)])
    out = cs.tie_use_from(Votes(frame=frame, reviewer_ids=ids, n_pairs=8))
    pool = out["pool_tie_rate"][0]
    expected = out["expected_tie_rate"].to_numpy()
    assert ((expected >= 0) & (expected <= 1)).all()
    for i in range(6):
        mine = frame.filter(pl.col("r") == i)
        others = frame.filter((pl.col("r") != i) & pl.col("p").is_in(mine["p"].implode()))
        if mine.height and others.height == 0:
            assert expected[i] == pytest.approx(pool)
        # flipping the reviewer's own ties leaves what they are held to (but for the pool's
        # share in the shrinkage) unchanged: recompute with their votes all non-ties
        flipped = frame.with_columns(outcome=pl.when(pl.col("r") == i).then(1)
                                     .otherwise(pl.col("outcome")))
        again = cs.tie_use_from(Votes(frame=flipped, reviewer_ids=ids, n_pairs=8))
        if mine.height and others.height:
            pool2 = again["pool_tie_rate"][0]
            n_o = others.group_by("p").len()
            shift = float(np.mean([PRIOR_VOTES * (pool - pool2)
                                   / (n + PRIOR_VOTES)
                                   for n in mine.join(n_o, on="p", how="left")["len"]
                                   .fill_null(0).to_list()]))
            assert expected[i] - again["expected_tie_rate"][i] == pytest.approx(shift, abs=1e-9)
