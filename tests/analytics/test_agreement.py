"""Agreement metrics on real DuckDB warehouses built from small JSONL fixtures."""

from __future__ import annotations

from pathlib import Path

import krippendorff
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dissensus.analytics import agreement as ag
from dissensus.warehouse.db import connect
from dissensus.warehouse.errors import EmptyDataError


def matrix_rows(vote, data: np.ndarray) -> list[dict]:
    """Reliability data (coders x units, NaN missing; +1 prefers response A, -1 B, 0 tie) as
    comparison rows."""
    return [vote(f"r{c}", u, int(data[c, u]))
            for c in range(data.shape[0]) for u in range(data.shape[1])
            if not np.isnan(data[c, u])]


def oriented_rows(warehouse, vote, data: np.ndarray) -> list[dict]:
    """Rows whose value +1 means the *canonical* response_1 is preferred: a scratch ingest
    tells which items store A as response_1; the others get A and B swapped."""
    scratch = warehouse([vote("probe", u, 1) for u in range(data.shape[1])], "probe")
    flipped = {int(p.split()[1]) for p, in scratch.execute(
        "SELECT t.body FROM comparisons c JOIN texts t ON t.text_id = c.prompt_id "
        "WHERE NOT c.a_is_response_1").fetchall()}
    rows = matrix_rows(vote, data)
    for row in rows:
        if int(row["prompt"].split()[1]) in flipped:
            row["response_a"], row["response_b"] = row["response_b"], row["response_a"]
    return rows


def test_textbook_binary_example(warehouse, vote) -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", binary data, two
    # observers, ten units: alpha = 0.095.
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    data = np.array([a, b], dtype=float) * 2 - 1  # 1 -> +1, 0 -> -1
    con = warehouse(oriented_rows(warehouse, vote, data))
    out = ag.krippendorff_alpha(con, n_boot=200, symmetric=False)
    assert out["alpha"][0] == pytest.approx(0.095, abs=5e-4)
    assert out["n_pairs"][0] == 10 and out["n_votes"][0] == 20
    assert out["alpha_low"][0] < out["alpha"][0] < out["alpha_high"][0]


def test_symmetric_alpha_ignores_orientation(warehouse, vote) -> None:
    rng = np.random.default_rng(3)
    data = rng.choice([-1.0, 0.0, 1.0], p=[0.6, 0.1, 0.3], size=(4, 25))
    rows = matrix_rows(vote, data)
    swapped = [dict(r, response_a=r["response_b"], response_b=r["response_a"],
                    choice={"a": "b", "b": "a", "tie": "tie"}[r["choice"]]) if i % 2 else r
               for i, r in enumerate(rows)]
    one = ag.krippendorff_alpha(warehouse(rows, "one"), n_boot=0)["alpha"][0]
    two = ag.krippendorff_alpha(warehouse(swapped, "two"), n_boot=0)["alpha"][0]
    assert one == pytest.approx(two, abs=1e-12)


def test_alpha_matches_package_on_random_warehouse(warehouse, vote) -> None:
    rng = np.random.default_rng(7)
    truth = rng.choice([-1, 0, 1], size=40)
    data = np.where(rng.random((6, 40)) < 0.7, truth, rng.choice([-1, 0, 1], size=(6, 40)))
    data = data.astype(float)
    data[rng.random(data.shape) < 0.3] = np.nan
    con = warehouse(oriented_rows(warehouse, vote, data))
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    got = ag.krippendorff_alpha(con, n_boot=0, symmetric=False)["alpha"][0]
    assert got == pytest.approx(expected, abs=1e-9)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 7), st.integers(2, 30), st.integers(0, 2**32 - 1))
def test_pattern_alpha_matches_package(coders: int, units: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = rng.choice([-1.0, 0.0, 1.0], size=(coders, units))
    data[rng.random(data.shape) < 0.25] = np.nan
    counts = np.stack([(data == v).sum(axis=0) for v in (1, 0, -1)], axis=1).astype(float)
    if (counts.sum(axis=1) >= 2).sum() == 0 or np.unique(data[~np.isnan(data)]).size < 2:
        return
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    got = ag._alpha_from_patterns(counts, np.ones(units))
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-9)


def test_alpha_by_group_and_week(warehouse, vote) -> None:
    rows = [vote(f"r{c}", u, 1 if u % 2 else -1, category="billing" if u < 10 else "urgent")
            for c in range(3) for u in range(20)]
    con = warehouse(rows)
    by_cat = ag.krippendorff_alpha(con, by="category", n_boot=50)
    assert set(by_cat["group"]) == {"billing", "urgent"}
    assert by_cat["alpha"].to_list() == pytest.approx([1.0, 1.0])
    weeks = ag.krippendorff_alpha(con, by="week", n_boot=0)
    assert all(g.startswith("2026-W") for g in weeks["group"])
    with pytest.raises(Exception, match="Cannot group"):
        ag.krippendorff_alpha(con, by="planet")


def test_fleiss_pairwise_and_loo(warehouse, vote) -> None:
    # three reviewers on six items; r2 disagrees on two of them
    r0 = [1, 1, -1, -1, 0, 1]
    r2 = [1, -1, -1, 1, 0, 1]
    con = warehouse(oriented_rows(warehouse, vote, np.array([r0, r0, r2], dtype=float)))
    counts = np.array([[sum(x[u] == v for x in (r0, r0, r2)) for v in (1, 0, -1)]
                       for u in range(6)], dtype=float)
    p_i = ((counts**2).sum(1) - 3) / 6
    p_j = counts.sum(0) / 18
    kappa = (p_i.mean() - (p_j**2).sum()) / (1 - (p_j**2).sum())
    fk = ag.fleiss_kappa(con, n_boot=50)
    assert fk["kappa"][0] == pytest.approx(kappa)
    assert fk["raters_per_pair"][0] == 3 and fk["n_pairs_left_out"][0] == 0
    pw = ag.pairwise_agreement(con, min_overlap=6)
    agree = {(a, b): x for a, b, x in pw.select("reviewer_a", "reviewer_b", "agreement").rows()}
    assert agree[("r0", "r1")] == 1.0 and agree[("r0", "r2")] == pytest.approx(4 / 6)
    loo = {r: x for r, x in ag.leave_one_out_agreement(con).select(
        "reviewer_id", "loo_agreement").rows()}
    assert loo["r2"] == pytest.approx(4 / 6) and loo["r0"] == pytest.approx((4 * 1 + 2 * 0.5) / 6)
    rel = ag.model_free_reliability(con).sort("reliability")
    assert rel["reviewer_id"][0] == "r2"
    assert (rel["reliability_low"] <= rel["reliability"]).all()


def test_repeat_votes_count_once(warehouse, vote) -> None:
    rows = [vote("r0", 1, 1), vote("r1", 1, 1),
            vote("r1", 1, -1, created_at="2026-02-01T10:00:00", comparison_id="again")]
    con = warehouse(rows)
    assert ag.krippendorff_alpha(con, n_boot=0)["n_votes"][0] == 2


def test_reviewer_less_data_says_so(warehouse, vote) -> None:
    con = warehouse([vote(None, u, 1) for u in range(5)])
    for fn in (ag.krippendorff_alpha, ag.fleiss_kappa, ag.pairwise_agreement,
               ag.leave_one_out_agreement, ag.model_free_reliability):
        with pytest.raises(EmptyDataError, match="none of the 5 comparisons has a reviewer id"):
            fn(con)


def test_empty_warehouse_says_so(tmp_path: Path) -> None:
    con = connect(tmp_path / "empty.duckdb")
    with pytest.raises(EmptyDataError, match="no comparisons"):
        ag.krippendorff_alpha(con)
