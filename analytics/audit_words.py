"""What the audit says in words: its verdict names and the sentences under its table.

The verdicts themselves are decided in :mod:`dissensus.analytics.audit_flags`; this module holds
the names they share with the notes, the dashboards and the benchmarks, and the notes that
count verdicts the data cannot fully support.
"""

from __future__ import annotations

import duckdb
import polars as pl

from dissensus.analytics.audit_fit import fit_notes

LEANS_TO_ONE_LABEL = "leans toward one label"
"""The verdict of a reviewer in a label task whose votes lean toward one label."""

ONE_LABEL = "one label on nearly every item"
"""The verdict of a reviewer in a label task flagged for lapses who picks one label on nearly
every item: a worker who clicks one label whatever the item and a rater who draws the line for
that label far from everyone else cast the same votes."""

MINORITY_VIEW = "minority view, consistent"
"""The verdict of a careful reviewer placed in a minority school that the pairs show."""

VOTES_ALONE = ("from their votes alone: accounts that copy one answer source vote alike too, "
               "and gold questions or repeated pairs would tell them apart")
"""The reason added to a minority view that no repeats or gold questions confirm."""

UNSETTLED = "cannot tell from their votes"
"""The verdict of a reviewer whose votes favour neither careful nor lapses clearly."""


def unsettled_note(audit: pl.DataFrame) -> str | None:
    """A sentence for the audit when many reviewers' votes cannot tell careful from lapsing."""
    if audit.height == 0 or "verdict" not in audit.columns:
        return None
    n = int((audit["verdict"] == UNSETTLED).sum())
    if n == 0:
        return None
    return (f"{n} of {audit.height} reviewers: their votes favour neither careful nor lapses "
            "clearly, so the audit does not call them 'ok'; their reliability is mostly the "
            "pool's. More votes per reviewer (or repeats and gold questions) would settle it.")


def minority_view_note(audit: pl.DataFrame) -> str | None:
    """A sentence for the audit when "minority view" verdicts rest on the votes alone.

    In the votes, a group of accounts that copy one answer source and lapse part of the time is
    a school that finds some pairs close where the others find them clear (the robustness
    world ``copy_ring``); only evidence outside the votes tells the two apart."""
    if audit.height == 0 or "verdict" not in audit.columns or "reasons" not in audit.columns:
        return None
    alone = audit.filter((pl.col("verdict") == MINORITY_VIEW)
                         & pl.col("reasons").str.contains(VOTES_ALONE, literal=True))
    if alone.height == 0:
        return None
    return (f"{alone.height} reviewer(s) are called '{MINORITY_VIEW}' from their votes alone. "
            "Accounts that copy one answer source vote alike too, and votes cannot tell the "
            "two apart: check their gold questions, repeated pairs or submission times before "
            "their view is trained into a school head.")


def audit_notes(con: duckdb.DuckDBPyConnection, audit: pl.DataFrame) -> list[str]:
    """Everything the audit says in words under its table: the latest fit's notes
    (:func:`fit_notes`), the count of reviewers whose votes cannot tell
    (:func:`unsettled_note`) and of minority views the votes alone carry
    (:func:`minority_view_note`)."""
    extra = [note for note in (unsettled_note(audit), minority_view_note(audit)) if note]
    return fit_notes(con) + extra
