"""The vote table of the reviewer audit, built once per call chain and shared by every check.

Every statistic of :mod:`dissensus.analytics.agreement`, :mod:`dissensus.analytics.consistency` and
:mod:`analytics.audit` is an aggregate over the comparisons that name their reviewer, most of them
over the *first* judgment of each (reviewer, pair). Computing that first judgment with a window
query per check made each check scan, partition and sort the million rows again. Instead,
:func:`load_votes` reads the integer-coded votes of :mod:`warehouse.vote_index` once (stored by
ingest; built in memory when stale); the checks are then vectorised numpy/polars over integer
arrays, and a chain of checks (the audit, a report card) passes the same :class:`Votes` along.
A check called alone on a connection reads the votes the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import duckdb
import numpy as np
import polars as pl

from dissensus.warehouse.errors import DissensusError, EmptyDataError
from dissensus.warehouse.vote_index import (
    compute_votes,
    read_vote_index,
    table_columns,
)

VOTES_SQL = """
    SELECT comparison_id, reviewer_id, pair_id, outcome, first_shown, created_at, seconds_spent,
           category, batch, guideline_version, gold_outcome
    FROM comparisons WHERE has_reviewer
    QUALIFY row_number() OVER (PARTITION BY reviewer_id, pair_id
                               ORDER BY created_at NULLS LAST, comparison_id) = 1
"""
"""First vote of each (reviewer, pair): the unit of every agreement statistic (the SQL
definition; :class:`Votes` computes the same set without a window)."""

LOO_SQL = f"""
    WITH v AS ({VOTES_SQL}),
    pc AS (SELECT pair_id, outcome, count(*) AS n_same FROM v GROUP BY ALL),
    p AS (SELECT pair_id, sum(n_same) AS n_pair, arg_max(outcome, n_same) AS top,
                 max(n_same) AS top_n FROM pc GROUP BY ALL),
    pt AS (SELECT pair_id, count(*) AS n_top FROM pc JOIN p USING (pair_id)
           WHERE pc.n_same = p.top_n GROUP BY ALL)
    SELECT v.*, p.n_pair - 1 AS n_others,
           CASE WHEN p.n_pair > 1 THEN (pc.n_same - 1) / (p.n_pair - 1) END AS loo_agreement,
           CASE WHEN p.n_pair > 1 THEN
               (pc.n_same = p.top_n)::DOUBLE / pt.n_top END AS majority_agreement
    FROM v JOIN pc USING (pair_id, outcome) JOIN p USING (pair_id) JOIN pt USING (pair_id)
"""
"""Per vote: the share of the other reviewers on the pair who voted the same
(``loo_agreement``) and agreement with the pair's majority including the vote itself
(``majority_agreement``; a k-way tie for the majority counts 1/k). The SQL definition;
:meth:`Votes.loo` computes the same per vote with numpy."""


def require_columns(
    con: duckdb.DuckDBPyConnection, table: str, columns: Iterable[str], purpose: str
) -> None:
    """Raise a :class:`DissensusError` naming the missing columns of ``table``."""
    have = table_columns(con, table)
    missing = [c for c in columns if c not in have]
    if missing:
        raise DissensusError(
            f"{purpose} needs the column(s) {', '.join(missing)} of table '{table}'.",
            where=f"table {table}",
            expected=", ".join(columns),
            fix="open a warehouse made by `dissensus ingest` (the file may be older or foreign)",
        )


def require_reviewers(
    con: duckdb.DuckDBPyConnection, purpose: str, columns: Iterable[str] = ()
) -> int:
    """Check the columns, then that some comparisons name their reviewer; return that count.

    Raises :class:`EmptyDataError` with words when the warehouse is empty or anonymous.
    """
    require_columns(
        con, "comparisons", ("reviewer_id", "has_reviewer", "pair_id", *columns), purpose
    )
    total, named = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE has_reviewer) FROM comparisons"
    ).fetchall()[0]
    if total == 0:
        raise EmptyDataError(
            f"{purpose}: the warehouse holds no comparisons.",
            fix="run `dissensus ingest FILE` or `dissensus demo` first",
        )
    if named == 0:
        raise EmptyDataError(
            f"{purpose}: none of the {total:,} comparisons has a reviewer id, so there is no "
            "reviewer to judge and no way to tell two votes by one person from votes by two.",
            expected="comparisons with reviewer_id",
            fix="ingest data that names its reviewers (a reviewer_id column, pseudonymised if "
            "need be)",
        )
    return int(named)


@dataclass(frozen=True, eq=False)
class Votes:
    """Every comparison that names its reviewer, integer-coded, each reviewer's in time order.

    ``frame`` columns: ``r`` (reviewer code, an index into ``reviewer_ids``, which is sorted),
    ``p`` (pair code), ``outcome``, ``first_shown``, ``created_at``, ``seconds_spent``,
    ``gold_outcome``, any extra columns asked of :func:`load_votes`, ``k`` (1 for the
    reviewer's first judgment of the pair, 2 for the second...), ``first_outcome`` and
    ``first_first_shown`` (those of the first judgment). Rows are ordered by reviewer, then
    ``created_at`` (nulls last), then ``comparison_id``.
    """

    frame: pl.DataFrame
    reviewer_ids: pl.Series
    n_pairs: int

    @property
    def n_reviewers(self) -> int:
        return self.reviewer_ids.len()

    @cached_property
    def r(self) -> np.ndarray:
        return self.frame["r"].to_numpy()

    @cached_property
    def p(self) -> np.ndarray:
        return self.frame["p"].to_numpy()

    @cached_property
    def reviewer_pair(self) -> np.ndarray:
        """Per vote, the index of its (reviewer, pair): a reviewer's repeats of a pair share it."""
        key = self.r.astype(np.int64) * max(self.n_pairs, 1) + self.p
        return np.unique(key, return_inverse=True)[1].reshape(-1)

    @cached_property
    def unique(self) -> pl.DataFrame:
        """The first judgment of each (reviewer, pair) with its leave-one-out figures."""
        u = self.frame.filter(pl.col("k") == 1)
        p = u["p"].to_numpy()
        c = u["outcome"].to_numpy().astype(np.int64) + 1
        cnt = np.bincount(p * 3 + c, minlength=3 * self.n_pairs).reshape(self.n_pairs, 3)
        n_pair = cnt.sum(axis=1)
        top = cnt.max(axis=1)
        n_top = (cnt == top[:, None]).sum(axis=1)
        same, m = cnt[p, c], n_pair[p]
        shared = m > 1
        with np.errstate(invalid="ignore", divide="ignore"):
            loo = (same - 1) / (m - 1)
            majority = (same == top[p]).astype(float) / n_top[p]
        return u.with_columns(
            n_others=pl.Series(m - 1, dtype=pl.Int64),
            loo_agreement=pl.Series(np.where(shared, loo, np.nan)).fill_nan(None),
            majority_agreement=pl.Series(np.where(shared, majority, np.nan)).fill_nan(None),
        )

    def ids(self, codes: np.ndarray | pl.Series) -> pl.Series:
        """Reviewer ids of reviewer codes."""
        return self.reviewer_ids.gather(codes).alias("reviewer_id")

    def code(self, reviewer_id: str) -> int | None:
        """The code of ``reviewer_id`` (None when the reviewer has no votes)."""
        i = int(self.reviewer_ids.search_sorted(reviewer_id, side="left"))
        if i < self.n_reviewers and self.reviewer_ids[i] == reviewer_id:
            return i
        return None


def load_votes(con: duckdb.DuckDBPyConnection, extra: Mapping[str, str] | None = None) -> Votes:
    """Read the comparisons that name their reviewer into a :class:`Votes`.

    ``extra``: more columns, name -> SQL expression over ``comparisons`` (e.g. a grouping).
    Call after :func:`require_reviewers` (there must be votes). Reads the warehouse's stored
    vote index when it is fresh (see :mod:`warehouse.vote_index`), else builds the same frame
    from ``comparisons``.
    """
    arrays = read_vote_index(con, extra) or compute_votes(con, extra)
    return Votes(frame=arrays.frame, reviewer_ids=arrays.reviewer_ids, n_pairs=arrays.n_pairs)


def count_by(votes: Votes, mask: np.ndarray | None = None, r: np.ndarray | None = None):
    """Count per reviewer code (of ``r``, default all votes), optionally of ``mask`` rows."""
    r = votes.r if r is None else r
    w = None if mask is None else mask.astype(np.float64)
    return np.bincount(r, weights=w, minlength=votes.n_reviewers).astype(np.int64)
