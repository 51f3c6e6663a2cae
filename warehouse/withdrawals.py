"""Withdrawn comparisons: deleted at their source, or replaced by a revised version.

The design keeps one rule for every reader: **``comparisons`` holds the current judgments
only.** A comparison that stops being current is *moved*, whole (every column, BY NAME), to
``comparison_withdrawals`` with when, why (``reason``) and what asked for it (``source``), in
the same transaction that removes it. So the model frame, the vote index, training and export
read ``comparisons`` as before and need no filter, and nothing is ever physically lost: a
withdrawn row can be read (and put back by hand) from the withdrawal table, and its texts stay
in ``texts``.

* **Deleted** (``reason = 'deleted'``): the source says the judgment no longer exists (a
  Label Studio annotation was deleted). The row leaves ``comparisons``; its id is not stored
  again: ingest quarantines a later row with that id (an old export ingested again, or an
  out-of-order redelivery) with the withdrawal in the reason (:func:`refuse_withdrawn`).
* **Revised** (``reason = 'revised'``): the source changed the judgment (a reviewer changed
  their pick). An ingest with ``revise`` set replaces the stored row by the new version under the
  **same** ``comparison_id`` (so a later export of the project still matches it) and keeps the
  old one here with ``replaced_in_batch``, the batch of the new version
  (:func:`revise_stored`). Without ``revise`` (files, ``POST /v1/comparisons``) another content
  under a stored id stays a conflict and is quarantined, as before.

A fit made before a revision still holds a weight for the comparison id, computed from the old
judgment, until the next fit. A withdrawal also drops the vote index's state row in its own
transaction: the index's freshness check compares counts, which a revision leaves unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import duckdb
import polars as pl

DELETED: Final = "deleted"
REVISED: Final = "revised"
LISTED_COLUMNS: Final = (
    "w.withdrawal_id, w.withdrawn_at, w.reason, w.source, w.replaced_in_batch, "
    "w.comparison_id, w.reviewer_id, w.choice, c.choice AS current_choice, w.created_at, "
    "w.category, w.pair_id, w.batch_id, w.source_line"
)
"""What a listing shows of a withdrawal: the full row stays in the table."""


def utc_now() -> datetime:
    """Now in UTC, without a zone (as every TIMESTAMP of the warehouse)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _archive(con: duckdb.DuckDBPyConnection, where: str, params: list[object], reason: str,
             source: str, at: datetime, replaced_in_batch: int | None) -> None:
    """Copy the comparisons matching ``where`` to the withdrawal table, then delete them. The
    caller holds the transaction, so both happen or neither."""
    con.execute(
        f"""
        INSERT INTO comparison_withdrawals BY NAME
        SELECT (SELECT coalesce(max(withdrawal_id), 0) FROM comparison_withdrawals)
                   + row_number() OVER (ORDER BY c.comparison_id) AS withdrawal_id,
               CAST(? AS TIMESTAMP) AS withdrawn_at, ? AS reason, ? AS source,
               CAST(? AS INTEGER) AS replaced_in_batch, c.*
        FROM comparisons c WHERE {where}
        """,
        [at, reason, source, replaced_in_batch, *params],
    )
    con.execute(f"DELETE FROM comparisons c WHERE {where}", params)
    # the stored vote index was built from what was just withdrawn: drop its state row, so it
    # reads as not built (the audit computes the votes meanwhile) until a writer rebuilds it
    con.execute("DELETE FROM vote_index_state")


def withdraw(con: duckdb.DuckDBPyConnection, comparison_ids: list[str], source: str
             ) -> dict[str, int]:
    """Withdraw the stored comparisons among ``comparison_ids`` as deleted, in one transaction;
    ``{comparison_id: withdrawal_id}`` of those withdrawn (ids not stored are left out)."""
    if not comparison_ids:
        return {}
    where = "c.comparison_id IN (SELECT unnest(CAST(? AS VARCHAR[])))"
    con.execute("BEGIN TRANSACTION")
    try:
        last = con.execute("SELECT coalesce(max(withdrawal_id), 0) FROM comparison_withdrawals"
                           ).fetchall()[0][0]
        _archive(con, where, [comparison_ids], DELETED, source, utc_now(), None)
        done = con.execute("SELECT comparison_id, withdrawal_id FROM comparison_withdrawals "
                           "WHERE withdrawal_id > ?", [last]).fetchall()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {str(cid): int(wid) for cid, wid in done}


def deleted_before(con: duckdb.DuckDBPyConnection, comparison_ids: list[str]
                   ) -> dict[str, tuple[int, datetime]]:
    """``{comparison_id: (withdrawal_id, withdrawn_at)}`` of those among ``comparison_ids``
    withdrawn as deleted before."""
    if not comparison_ids:
        return {}
    rows = con.execute(
        "SELECT comparison_id, max(withdrawal_id), max(withdrawn_at) FROM comparison_withdrawals "
        "WHERE reason = ? AND comparison_id IN (SELECT unnest(CAST(? AS VARCHAR[]))) GROUP BY 1",
        [DELETED, comparison_ids]).fetchall()
    return {str(cid): (int(wid), at) for cid, wid, at in rows}


def refuse_withdrawn(con: duckdb.DuckDBPyConnection) -> None:
    """Quarantine rows of the ingest temp table ``checked`` whose given ``comparison_id`` was
    withdrawn as deleted: a deletion must not be undone by an old export ingested again or by
    an event delivered late. The reason names the withdrawal."""
    if not con.execute("SELECT count(*) FROM comparison_withdrawals WHERE reason = ?",
                       [DELETED]).fetchall()[0][0]:
        return  # the common case costs one count
    con.execute(
        """
        UPDATE checked SET _reason = 'comparison_id: ''' || w.comparison_id || ''' was '
            || 'withdrawn at ' || strftime(w.at, '%Y-%m-%d %H:%M:%S') || ' UTC (' || w.source
            || ', withdrawal ' || w.withdrawal_id || '); a withdrawn comparison is not stored '
            || 'again (`dissensus withdrawals` or GET /v1/withdrawals shows it)'
        FROM (SELECT comparison_id, max(withdrawal_id) AS withdrawal_id, max(withdrawn_at) AS at,
                     arg_max(source, withdrawal_id) AS source
              FROM comparison_withdrawals WHERE reason = ? GROUP BY 1) w
        WHERE checked._reason IS NULL AND trim(checked.comparison_id) = w.comparison_id
        """,
        [DELETED],
    )


def revise_stored(con: duckdb.DuckDBPyConnection, batch_id: int, source: str,
                  at: datetime) -> int:
    """In the ingest temp table ``final``, make each row whose id is stored with other content
    the new version of that comparison: the stored row moves to the withdrawal table (reason
    'revised'), and the row is stored as new. Only the first such line per id is taken; a
    second one in the same batch stays a conflict. Returns how many were revised."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE revising AS
        SELECT _comparison_id AS comparison_id, min(_line) AS line FROM final
        WHERE _status = 'conflict' AND _comparison_id IN (SELECT comparison_id FROM comparisons)
        GROUP BY 1
    """)
    count = int(con.execute("SELECT count(*) FROM revising").fetchall()[0][0])
    if count:
        _archive(con, "c.comparison_id IN (SELECT comparison_id FROM revising)", [], REVISED,
                 source, at, batch_id)
        con.execute("UPDATE final SET _status = 'new', _conflict = NULL "
                    "WHERE _line IN (SELECT line FROM revising)")
    return count


def revisions_in_batch(con: duckdb.DuckDBPyConnection, batch_id: int
                       ) -> dict[str, tuple[int, str]]:
    """``{comparison_id: (withdrawal_id, previous choice)}`` of the rows batch ``batch_id``
    revised."""
    rows = con.execute(
        "SELECT comparison_id, withdrawal_id, choice FROM comparison_withdrawals "
        "WHERE reason = ? AND replaced_in_batch = ?", [REVISED, batch_id]).fetchall()
    return {str(cid): (int(wid), str(choice)) for cid, wid, choice in rows}


def withdrawal_rows(con: duckdb.DuckDBPyConnection, *, reason: str | None = None,
                    limit: int | None = None, offset: int = 0) -> tuple[int, pl.DataFrame]:
    """``(total, page)`` of withdrawals, newest first, with the current choice of a revised
    comparison beside its old one (null for a deleted one)."""
    where, params = ("WHERE w.reason = ?", [reason]) if reason else ("", [])
    total = int(con.execute(f"SELECT count(*) FROM comparison_withdrawals w {where}",
                            params).fetchall()[0][0])
    suffix = "LIMIT ? OFFSET ?" if limit is not None else ""
    frame = con.sql(
        f"SELECT {LISTED_COLUMNS} FROM comparison_withdrawals w "
        f"LEFT JOIN comparisons c ON w.reason = '{REVISED}' AND c.comparison_id = w.comparison_id "
        f"{where} ORDER BY w.withdrawal_id DESC {suffix}",
        params=[*params, *([limit, offset] if limit is not None else [])] or None).pl()
    return total, frame
