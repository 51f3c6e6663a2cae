"""The stored vote index equals the one computed from comparisons, and is never read stale."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.vote_index import (
    GROUP_COLUMNS,
    compute_votes,
    read_vote_index,
    refresh_vote_index,
)

GROUPS = {g: f"coalesce({g}, '(none)')" for g in GROUP_COLUMNS}


def rows(seed: int, n: int, offset: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        row = {
            "comparison_id": f"c{offset + i}",
            "prompt": f"prompt {rng.integers(8)}",
            "response_a": f"A{rng.integers(4)}",
            "response_b": f"B{rng.integers(4)}",
            "choice": str(rng.choice(["a", "b", "tie"])),
            "shown_first": str(rng.choice(["a", "b"])),
            "reviewer_id": f"r{rng.integers(7)}",
            "seconds_spent": float(rng.integers(5, 90)),
            "category": str(rng.choice(["billing", "triage"])),
            # few distinct times: equal times within a reviewer are broken by comparison_id
            "created_at": f"2026-01-0{rng.integers(1, 4)}T10:00:00",
        }
        if i % 11 == 0:
            del row["created_at"]
        if i % 13 == 0:
            del row["reviewer_id"]
        out.append(row)
    return out


def write(path: Path, data: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return path


def assert_same(con, extra=None) -> None:
    stored = read_vote_index(con, extra)
    assert stored is not None, "the index should be fresh"
    computed = compute_votes(con, extra)
    assert stored.n_pairs == computed.n_pairs
    assert stored.reviewer_ids.to_list() == computed.reviewer_ids.to_list()
    assert stored.frame.columns == computed.frame.columns
    # pair codes are arbitrary labels: compare them through the pair they stand for
    a, b = stored.frame, computed.frame
    assert a.drop("p").equals(b.drop("p"))
    pairs = pl.DataFrame({"a": a["p"], "b": b["p"]}).unique()
    assert pairs["a"].n_unique() == pairs["b"].n_unique() == pairs.height


def test_ingest_stores_a_fresh_index_equal_to_the_computed_one(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, write(tmp_path / "a.jsonl", rows(0, 300)))
    assert report.accepted > 0
    assert_same(con)
    assert_same(con, GROUPS)
    # a second file without a refresh: the index is stale and must not be read
    ingest_file(con, write(tmp_path / "b.jsonl", rows(1, 50, offset=1000)), refresh_index=False)
    assert read_vote_index(con) is None
    refresh_vote_index(con)
    assert_same(con)
    con.close()
    ro = connect(tmp_path / "w.duckdb", read_only=True)  # what the dashboards open
    assert_same(ro, GROUPS)


def test_an_expression_outside_the_index_is_not_answered_from_it(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    ingest_file(con, write(tmp_path / "a.jsonl", rows(2, 100)))
    assert read_vote_index(con, {"grp": "hash(pair_id)"}) is None
    assert compute_votes(con, {"grp": "hash(pair_id)"}).frame["grp"].null_count() == 0


def test_a_failed_batch_leaves_the_index_as_it_was(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    ingest_file(con, write(tmp_path / "a.jsonl", rows(3, 120)))
    before = read_vote_index(con)
    assert before is not None
    bad = rows(4, 30, offset=500)
    bad[5]["choice"] = "maybe"
    from dissensus.warehouse.errors import StrictModeError

    with pytest.raises(StrictModeError):
        ingest_file(con, write(tmp_path / "b.jsonl", bad), strict=True)
    after = read_vote_index(con)
    assert after is not None and after.frame.equals(before.frame)


def test_an_upgraded_warehouse_gets_its_index(tmp_path: Path, schema_before: Callable) -> None:
    db = tmp_path / "w.duckdb"
    con = connect(db)
    ingest_file(con, write(tmp_path / "a.jsonl", rows(5, 200)))
    # make the file look like one written before the index existed (schema version 2)
    schema_before(con, 3)
    con.close()
    ro = connect(db, read_only=True)
    assert read_vote_index(ro) is None  # read-only never migrates: computed instead
    ro.close()
    con = connect(db)  # a writer upgrades it and builds the index
    assert_same(con)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 80))
def test_index_matches_computation_for_any_data(tmp_path: Path, seed: int, n: int) -> None:
    folder = tmp_path / f"{seed}-{n}"
    folder.mkdir()
    con = connect(folder / "w.duckdb")
    report = ingest_file(con, write(folder / "a.jsonl", rows(seed, n)))
    named = con.execute("SELECT count(*) FROM comparisons WHERE has_reviewer").fetchall()[0][0]
    if named:
        assert_same(con, GROUPS)
    else:
        assert report.accepted == 0 or read_vote_index(con) is not None
    con.close()
