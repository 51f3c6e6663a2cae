"""Per-pair votes by school, as of a fit: the table ``pair_school_votes``.

For a pair j and a school k the trade-off analytics need the school's vote weight and its share
for response 1:

    w_jk = sum_n weight_n * m_nk          share_jk = sum_n weight_n * m_nk * v_n / w_jk

over the comparisons n of the pair, with ``weight_n`` the fit's probability that judgment n was
careful, ``m_nk`` its school-membership weight and ``v_n = (outcome_n + 1) / 2`` (a tie counts
1/2). The pooled row ("all reviewers") uses ``m_n = 1``. Comparisons the fit did not weigh
(added later, or without a reviewer) count with weight 1 in the pooled row only.

Computing this joins every comparison with its weight (about a second per million comparisons),
and it only changes with a new fit, so :func:`store_pair_school_votes` writes it beside the fit,
inside the fit's transaction. Each row holds the lists ``w`` and ``share_1``: position 1 is the
pooled row, position k + 2 is school k (DuckDB lists are 1-based). :func:`pair_school_votes_sql`
is the same query for a caller that reads a fit stored before this table existed.
"""

from __future__ import annotations

import duckdb


def n_schools(con: duckdb.DuckDBPyConnection, fit_id: str) -> int:
    """How many schools the fit's comparison weights carry (0 without school weights)."""
    row = con.execute(
        "SELECT coalesce(max(len(school_weights)), 0) FROM comparison_weights WHERE fit_id = ?",
        [fit_id],
    ).fetchall()[0]
    return int(row[0])


def pair_school_votes_sql(schools: int) -> str:
    """SELECT pair_id, w, share_1 (lists of length ``schools + 1``) for the fit bound to ``?``."""
    vote = "(c.outcome + 1) / 2.0"
    weights = ["c.weight"] + [f"c.weight * coalesce(c.sw[{k + 1}], 0)" for k in range(schools)]
    w = ", ".join(f"sum({x})" for x in weights)
    # one pass with one aggregate per school, not an unnest into K rows per comparison
    share = ", ".join(f"sum({x} * {vote}) / nullif(sum({x}), 0)" for x in weights)
    return f"""
        SELECT c.pair_id, [{w}] AS w, [{share}] AS share_1
        FROM (SELECT c.pair_id, c.outcome, coalesce(cw.weight, 1.0) AS weight,
                     cw.school_weights AS sw
              FROM comparisons c LEFT JOIN comparison_weights cw
              ON cw.comparison_id = c.comparison_id AND cw.fit_id = ?) c
        GROUP BY c.pair_id
    """


def store_pair_school_votes(con: duckdb.DuckDBPyConnection, fit_id: str) -> int:
    """Write the fit's per-pair school votes (run it inside the fit's transaction); rows written."""
    con.execute("DELETE FROM pair_school_votes WHERE fit_id = ?", [fit_id])
    sql = pair_school_votes_sql(n_schools(con, fit_id))
    con.execute(
        "INSERT INTO pair_school_votes (fit_id, pair_id, w, share_1) "
        f"SELECT ?, pair_id, w, share_1 FROM ({sql})",
        [fit_id, fit_id],
    )
    return int(con.execute(
        "SELECT count(*) FROM pair_school_votes WHERE fit_id = ?", [fit_id]).fetchall()[0][0])


def has_pair_school_votes(con: duckdb.DuckDBPyConnection, fit_id: str) -> bool:
    """Whether the table exists and holds rows for the fit."""
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables").fetchall()}
    if "pair_school_votes" not in tables:
        return False
    return bool(con.execute(
        "SELECT count(*) > 0 FROM pair_school_votes WHERE fit_id = ?", [fit_id]).fetchall()[0][0])


def backfill_pair_school_votes(con: duckdb.DuckDBPyConnection) -> int:
    """Store the votes of every fit that has comparison weights but no stored votes (an upgraded
    file); returns the number of fits filled in."""
    fits = [r[0] for r in con.execute(
        "SELECT DISTINCT fit_id FROM comparison_weights WHERE fit_id NOT IN "
        "(SELECT DISTINCT fit_id FROM pair_school_votes) ORDER BY fit_id").fetchall()]
    for fit_id in fits:
        store_pair_school_votes(con, fit_id)
    return len(fits)
