"""The vote index: every comparison that names its reviewer, integer-coded and in time order.

Every reviewer-level statistic (agreement, reliability, consistency, drift) is an aggregate over
the comparisons that name their reviewer, most of them over the *first* judgment of each
(reviewer, pair). :func:`compute_votes` builds that view from ``comparisons``: reviewers coded by
their sorted ids (a join in DuckDB), pairs coded as dense integers, each reviewer's rows ordered
by ``created_at NULLS LAST, comparison_id`` (one integer sort; rare equal times broken by
reading those rows' ids), and each row's repeat index ``k`` within its (reviewer, pair), with the
outcome and display order of the first judgment beside it.

Building it costs about a second per million comparisons, and it only changes when comparisons
are added or withdrawn (a withdrawal, :mod:`dissensus.warehouse.withdrawals`, deletes the
``vote_index_state`` row in its own transaction, so the index reads as not built until the next
rebuild). So a writer stores it in the warehouse (:func:`refresh_vote_index`, run by ingest in
the batch's own transaction) as the tables ``vote_index`` (rows in order, with their position
``i``), ``vote_index_reviewers`` (code -> id) and ``vote_index_state`` (what it was built from).
:func:`read_vote_index` returns it when it is fresh (the same numbers of comparisons, with and
without reviewer, as when it was built) and None otherwise; callers then compute it in memory,
so a stale or missing index (an older file, a read-only open) costs time, never correctness.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter

import duckdb
import numpy as np
import polars as pl

OPTIONAL: dict[str, str] = {
    "outcome": "TINYINT",
    "first_shown": "TINYINT",
    "created_at": "TIMESTAMP",
    "seconds_spent": "DOUBLE",
    "gold_outcome": "TINYINT",
}
"""Columns read per vote (NULL of this type when a foreign file lacks one: every check first
requires the columns it uses, with an error in words)."""

GROUP_COLUMNS: tuple[str, ...] = ("category", "batch", "guideline_version")
"""Grouping columns kept in the stored index, so that agreement by group reads no join."""

_INDEX_COLUMNS = (
    "r",
    "p",
    "k",
    "outcome",
    "first_shown",
    "created_at",
    "seconds_spent",
    "gold_outcome",
    "first_outcome",
    "first_first_shown",
)


@dataclass(frozen=True, eq=False)
class VoteArrays:
    """``frame`` (see :class:`analytics.audit_votes.Votes`), the sorted reviewer ids the codes
    ``r`` index, and the number of pair codes."""

    frame: pl.DataFrame
    reviewer_ids: pl.Series
    n_pairs: int


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
    }


def _factorize(strings: pl.Series) -> tuple[np.ndarray, int]:
    """Dense codes of ``strings`` and their number.

    Codes come from a 64-bit hash (cheap), checked exactly against the strings; on a hash
    collision (never seen in practice) the exact, slower sort of the strings takes over.
    """
    dense = strings.hash(seed=0).rank("dense").to_numpy().astype(np.int64) - 1
    n = int(dense.max()) + 1 if dense.size else 0
    rep = np.zeros(n, dtype=np.int64)  # one row per code (any: all are checked against it)
    rep[dense] = np.arange(dense.size)
    if not bool((strings.gather(rep).gather(dense) == strings).all()):
        dense = strings.rank("dense").to_numpy().astype(np.int64) - 1
        n = int(dense.max()) + 1
    return dense, n


def _sort_key(major: np.ndarray, minor: np.ndarray, n_minor: int) -> np.ndarray | None:
    """``major * n_minor + minor`` when it fits in an int64 (None otherwise)."""
    if major.size and (int(major.max()) + 1) * max(n_minor, 1) >= 2**62:
        return None
    return major * max(n_minor, 1) + minor


def _order(major: np.ndarray, minor: np.ndarray, n_minor: int) -> np.ndarray:
    """Row order by (major, minor): one integer sort where the combined key fits."""
    key = _sort_key(major, minor, n_minor)
    return np.lexsort((minor, major)) if key is None else np.argsort(key)


def _break_ties(
    con: duckdb.DuckDBPyConnection, order: np.ndarray, key: np.ndarray, rowid: np.ndarray
) -> np.ndarray:
    """Put the runs of equal ``key[order]`` (one reviewer, one ``created_at``: rare) in
    ``comparison_id`` order, reading only those rows' ids."""
    ks = key[order]
    tie = ks[1:] == ks[:-1]
    if not tie.any():
        return order
    in_run = np.zeros(order.size, dtype=bool)
    in_run[1:] |= tie
    in_run[:-1] |= tie
    starts = in_run.copy()
    starts[1:] &= ~tie
    pos = np.flatnonzero(in_run)
    rows = rowid[order[pos]]
    ids = con.sql(
        "SELECT rowid AS row, comparison_id FROM comparisons WHERE rowid IN (SELECT unnest($rows))",
        params={"rows": rows.tolist()},
    ).pl()
    cid = pl.DataFrame({"row": rows}).join(ids, on="row", how="left", maintain_order="left")
    sub = pl.DataFrame({"run": np.cumsum(starts[pos]), "cid": cid["comparison_id"]}).select(
        pl.arg_sort_by("run", "cid")
    )
    order = order.copy()
    order[pos] = order[pos][sub.to_series().to_numpy()]
    return order


def reviewer_coded(
    con: duckdb.DuckDBPyConnection, columns: list[str]
) -> tuple[pl.DataFrame, pl.Series]:
    """SQL ``columns`` (over ``comparisons c``) of every comparison that names its reviewer,
    with the reviewer code ``r`` (DuckDB joins the sorted distinct ids; rows unordered), and
    the sorted reviewer ids the codes index."""
    reviewer_ids = con.sql(
        "SELECT reviewer_id FROM comparisons WHERE has_reviewer "
        "GROUP BY reviewer_id ORDER BY reviewer_id"
    ).pl().to_series()
    frame = con.sql(
        f"""
        WITH ids AS (
            SELECT reviewer_id, row_number() OVER (ORDER BY reviewer_id) - 1 AS r
            FROM (SELECT DISTINCT reviewer_id FROM comparisons WHERE has_reviewer)
        )
        SELECT ids.r::BIGINT AS r, {", ".join(columns)}
        FROM comparisons c JOIN ids USING (reviewer_id) WHERE c.has_reviewer
        """
    ).pl()
    return frame, reviewer_ids.alias("reviewer_id")


def compute_votes(
    con: duckdb.DuckDBPyConnection, extra: Mapping[str, str] | None = None
) -> VoteArrays:
    """Build the vote view from ``comparisons`` (there must be reviewer-named comparisons).

    ``extra``: more columns, name -> SQL expression over ``comparisons``. DuckDB codes the
    reviewers (a join with the sorted distinct ids); pairs are coded here; two integer sorts
    give the time order and the repeats.
    """
    have = table_columns(con, "comparisons")
    cols = [f"c.{c}" if c in have else f"NULL::{t} AS {c}" for c, t in OPTIONAL.items()]
    cols += [f"{sql} AS {name}" for name, sql in (extra or {}).items()]
    raw, reviewer_ids = reviewer_coded(con, ["c.rowid AS row", "c.pair_id", *cols])
    r = raw["r"].to_numpy().astype(np.int64)
    p, n_pairs = _factorize(raw["pair_id"])
    # each reviewer's votes in time order: (reviewer, created_at NULLS LAST, comparison_id)
    t = raw["created_at"].to_physical().to_numpy()
    tmin = int(np.nanmin(t)) if raw["created_at"].null_count() < t.size else 0
    t_off = raw["created_at"].to_physical().fill_null(tmin - 1).to_numpy() - tmin
    t_off[t_off < 0] = int(t_off.max()) + 1 if t_off.size else 0  # nulls last
    span = int(t_off.max()) + 1 if t_off.size else 1
    time_key = _sort_key(r, t_off, span)
    if time_key is None:  # decades of microseconds times many reviewers: rank the times
        t_off = np.unique(t_off, return_inverse=True)[1].reshape(-1)
        span = int(t_off.max()) + 1
        time_key = _sort_key(r, t_off, span)
    order = _break_ties(con, np.argsort(time_key), time_key, raw["row"].to_numpy())
    r, p = r[order], p[order]
    # repeats: in (reviewer, pair, time) order, the first row of each (reviewer, pair)
    by_key = _order(r * n_pairs + p, np.arange(r.size), r.size)
    ks_r, ks_p = r[by_key], p[by_key]
    start = np.ones(by_key.size, dtype=bool)
    start[1:] = (ks_r[1:] != ks_r[:-1]) | (ks_p[1:] != ks_p[:-1])
    head = np.maximum.accumulate(np.where(start, np.arange(by_key.size), 0))
    k = np.empty(by_key.size, dtype=np.int64)
    k[by_key] = np.arange(by_key.size) - head + 1
    head_row = np.empty(by_key.size, dtype=np.int64)
    head_row[by_key] = by_key[head]
    frame = (
        raw.drop("r", "row", "pair_id")
        .gather(order)
        .with_columns(
            r=pl.Series(r, dtype=pl.Int64),
            p=pl.Series(p, dtype=pl.Int64),
            k=pl.Series(k, dtype=pl.Int64),
        )
    )
    frame = frame.with_columns(
        first_outcome=frame["outcome"].gather(head_row),
        first_first_shown=frame["first_shown"].gather(head_row),
    )
    return VoteArrays(frame, reviewer_ids.alias("reviewer_id"), n_pairs)


def _source_state(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(reviewer-named comparisons, all comparisons): what a fresh index was built from.

    Ingest only ever appends comparisons; the one way a stored comparison changes or goes is a
    withdrawal, which deletes the state row in the same transaction (the index then reads as not
    built). So equal counts mean equal content.
    """
    row = con.execute(
        "SELECT count(*) FILTER (WHERE has_reviewer), count(*) FROM comparisons"
    ).fetchall()[0]
    return int(row[0]), int(row[1])


def has_index_tables(con: duckdb.DuckDBPyConnection) -> bool:
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    return {"vote_index", "vote_index_reviewers", "vote_index_state"} <= tables


def index_is_stale(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the stored index exists but does not match ``comparisons`` (or was never built
    although comparisons exist): a writer that finds this rebuilds it."""
    if not has_index_tables(con):
        return False
    state = con.execute("SELECT n_votes, n_comparisons FROM vote_index_state").fetchall()
    source = _source_state(con)
    if len(state) != 1:
        return source[1] > 0
    return (int(state[0][0]), int(state[0][1])) != source


def refresh_vote_index(con: duckdb.DuckDBPyConnection, *, in_transaction: bool = False) -> float:
    """Rebuild the stored vote index from ``comparisons``; return the seconds it took.

    ``in_transaction``: the caller has a transaction open (ingest: the index then commits or
    rolls back with the batch); otherwise the rebuild is its own transaction. A warehouse
    without the index tables (not migrated) is left alone.
    """
    if not has_index_tables(con):
        return 0.0
    if in_transaction:
        return _rebuild(con)
    con.execute("BEGIN TRANSACTION")
    try:
        seconds = _rebuild(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return seconds


def _rebuild(con: duckdb.DuckDBPyConnection) -> float:
    started = perf_counter()
    n_named, n_all = _source_state(con)
    con.execute("DELETE FROM vote_index")
    con.execute("DELETE FROM vote_index_reviewers")
    con.execute("DELETE FROM vote_index_state")
    have = table_columns(con, "comparisons")
    groups = {g: f"c.{g}" if g in have else "NULL::VARCHAR" for g in GROUP_COLUMNS}
    if n_named:
        votes = compute_votes(con, groups)
        frame = votes.frame.select(
            pl.int_range(votes.frame.height, dtype=pl.Int64).alias("i"),
            *_INDEX_COLUMNS,
            *GROUP_COLUMNS,
        )
        ids = pl.DataFrame(
            {"r": np.arange(votes.reviewer_ids.len()), "reviewer_id": votes.reviewer_ids}
        )
        for name, data in (("vote_index", frame), ("vote_index_reviewers", ids)):
            con.register("_vote_index_rows", data)
            try:
                con.execute(f"INSERT INTO {name} SELECT * FROM _vote_index_rows")
            finally:
                con.unregister("_vote_index_rows")
        n_pairs = votes.n_pairs
    else:
        n_pairs = 0
    con.execute(
        "INSERT INTO vote_index_state VALUES (now(), ?, ?, ?, ?)",
        [n_named, n_all, n_pairs, perf_counter() - started],
    )
    return perf_counter() - started


def read_vote_index(
    con: duckdb.DuckDBPyConnection, extra: Mapping[str, str] | None = None
) -> VoteArrays | None:
    """The stored vote index when it is fresh, with ``extra`` evaluated over it; else None.

    ``extra`` expressions may only use the index's columns (:data:`GROUP_COLUMNS` and the vote
    columns); any other expression returns None (the caller computes from ``comparisons``).
    """
    if not has_index_tables(con):
        return None
    state = con.execute("SELECT n_votes, n_comparisons, n_pairs FROM vote_index_state").fetchall()
    if len(state) != 1 or (int(state[0][0]), int(state[0][1])) != _source_state(con):
        return None
    n_pairs = int(state[0][2])
    cols = ["i", *_INDEX_COLUMNS] + [f"{sql} AS {name}" for name, sql in (extra or {}).items()]
    try:
        frame = con.sql(f"SELECT {', '.join(cols)} FROM vote_index").pl()
    except duckdb.BinderException:
        return None
    i = frame["i"].to_numpy()
    if i.size and not bool((np.diff(i) > 0).all()):  # a scan is not promised to keep order
        frame = frame.sort("i")
    names = (
        list(OPTIONAL) + list(extra or {}) + ["r", "p", "k", "first_outcome", "first_first_shown"]
    )
    frame = frame.select(names).with_columns(pl.col("r", "p", "k").cast(pl.Int64))
    reviewer_ids = (
        con.sql("SELECT reviewer_id FROM vote_index_reviewers ORDER BY r").pl().to_series()
    )
    return VoteArrays(frame, reviewer_ids.alias("reviewer_id"), n_pairs)


def index_status(con: duckdb.DuckDBPyConnection) -> str:
    """One line on the stored vote index: fresh, stale (and what to do) or absent."""
    if not has_index_tables(con):
        return ("absent (a warehouse from an older dissensus): the reviewer audit builds the "
                "votes in memory; open it once for writing (e.g. `dissensus reindex`) to store it")
    rows = con.execute(
        "SELECT built_at, n_votes, n_comparisons, seconds FROM vote_index_state"
    ).fetchall()
    if len(rows) != 1:
        return "not built yet: run `dissensus reindex` (the audit works without it, slower)"
    built_at, n_votes, n_all, seconds = rows[0]
    if (int(n_votes), int(n_all)) != _source_state(con):
        return (f"stale (built from {int(n_all):,} comparisons): run `dissensus reindex`; "
                "until then the audit builds the votes in memory (correct, slower)")
    return f"fresh ({int(n_votes):,} votes, built {built_at:%Y-%m-%d %H:%M} in {seconds:.1f} s)"
