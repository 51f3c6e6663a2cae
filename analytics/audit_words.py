"""What the audit says in words: its verdict names and the sentences under its table.

The verdicts themselves are decided in :mod:`dissensus.analytics.audit_flags`; this module holds
the names they share with the notes, the dashboards and the benchmarks, and the notes that
count verdicts the data cannot fully support.
"""

from __future__ import annotations

import duckdb
import polars as pl

from dissensus.analytics.audit_fit import fit_notes


def number(x: float | None, digits: int = 2) -> str:
    """A figure in the audit's words: ``digits`` decimals, "?" where there is none."""
    return "?" if x is None or (isinstance(x, float) and x != x) else f"{x:.{digits}f}"


LEANS_TO_ONE_LABEL = "leans toward one label"
"""The verdict of a reviewer in a label task whose votes lean toward one label."""

ONE_LABEL = "one label on nearly every item"
"""The verdict of a reviewer in a label task flagged for lapses who picks one label on nearly
every item: a worker who clicks one label whatever the item and a rater who draws the line for
that label far from everyone else cast the same votes."""

TIE_TASTE = "says 'equal' often (a tie taste, not lapses)"
"""The verdict of a reviewer who says 'equal' far more than the others on the same pairs, where
the annotator fit reads a tie threshold of their own (a stricter idea of 'clearly better') and
no lapses: the votes' pattern, 'equal' on close pairs, is a taste, not carelessness."""

TIE_TASTE_SEEN = ("careless 'equal' clicks would not repeat themselves, so these ties read as a "
                  "taste (a stricter idea of 'clearly better'), not lapses")
"""Why a reviewer who overuses ties but is consistent on repeats or gold is not flagged."""

TIES_FROM_VOTES_ALONE = (
    "from the votes alone, careless 'equal' clicks and a tie taste of their own ('equal' "
    "unless a pair is clear) look alike: fit the annotator model (`dissensus fit`), which "
    "reads a tie threshold per reviewer, or add repeated pairs or gold questions before "
    "acting on this flag")
"""The reason added to a tie-overuse flag where no fit tells a tie taste from careless ties."""

MINORITY_VIEW = "minority view, consistent"
"""The verdict of a careful reviewer placed in a minority school that the pairs show."""

COPYING = "accounts that copy one answer source vote alike too"
"""Why a minority view that nothing outside the votes confirms is only a reading of the votes."""

VOTES_ALONE = (f"from their votes alone: {COPYING}, and gold questions or repeated pairs would "
               "tell them apart")
"""The reason added to a minority view of a reviewer with no repeats or gold questions."""


def unconfirmed_reason(row: dict) -> str:
    """The reason added to a minority view that no repeats or gold questions confirm: the
    record the lead can check, or :data:`VOTES_ALONE` where there is none."""
    parts = []
    if row.get("n_gold"):
        parts.append(f"{round((row.get('gold_accuracy') or 0) * row['n_gold'])} of "
                     f"{row['n_gold']} gold answers right")
    if row.get("n_repeats"):
        parts.append(f"the same answer on {100 * (row.get('consistency') or 0):.0f}% of "
                     f"{row['n_repeats']} repeated pairs")
    if not parts:
        return VOTES_ALONE
    return f"{' and '.join(parts)}: too few or too mixed to show care, and {COPYING}"


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
    """A sentence for the audit when "minority view" verdicts rest on the votes alone (no
    repeats or gold questions that show care, see :func:`unconfirmed_reason`).

    In the votes, a group of accounts that copy one answer source and lapse part of the time is
    a school that finds some pairs close where the others find them clear (the robustness
    world ``copy_ring``); only evidence outside the votes tells the two apart."""
    if audit.height == 0 or "verdict" not in audit.columns or "reasons" not in audit.columns:
        return None
    alone = audit.filter((pl.col("verdict") == MINORITY_VIEW)
                         & pl.col("reasons").str.contains(COPYING, literal=True))
    if alone.height == 0:
        return None
    return (f"{alone.height} reviewer(s) are called '{MINORITY_VIEW}' without gold questions "
            "or repeated pairs that show their care. Accounts that copy one answer source vote "
            "alike too, and votes cannot tell the two apart: check their gold answers, repeated "
            "pairs or submission times before their view is trained into a school head.")


SPEED_WEIGHED = "P(careless)"
"""Words in the reasons of a fast reviewer whose speed was weighed with their votes."""


def speed_note(audit: pl.DataFrame) -> str | None:
    """A sentence for the audit when fast reviewers are left unflagged because speed says
    little in this pool (:mod:`dissensus.analytics.audit_speed`), with the pool's ratio as the
    reasons give it."""
    if audit.height == 0 or not {"verdict", "flagged", "reasons"} <= set(audit.columns):
        return None
    spared = audit.filter(~pl.col("flagged")
                          & pl.col("reasons").str.contains(SPEED_WEIGHED, literal=True))
    if spared.height == 0:
        return None
    ratio = spared["reasons"].str.extract(r"fast is ([0-9.]+)x as likely", 1).drop_nulls()
    how = f"{ratio[0]} times" if ratio.len() else "little"
    return (f"{spared.height} fast reviewer(s) are not flagged for their speed: in this pool "
            f"fast is {how} likelier from the reviewers whose votes read as careless than from "
            "the rest, and with their own votes that falls short of the flag's bar. Practised "
            "reviewers can be fast too, so speed is weighed only as far as the pool shows it "
            "goes with lapses; each one's reasons give P(careless) from votes and speed.")


def audit_notes(con: duckdb.DuckDBPyConnection, audit: pl.DataFrame) -> list[str]:
    """Everything the audit says in words under its table: the latest fit's notes
    (:func:`fit_notes`), the count of reviewers whose votes cannot tell
    (:func:`unsettled_note`), of minority views the votes alone carry
    (:func:`minority_view_note`) and of fast reviewers left unflagged (:func:`speed_note`)."""
    extra = [note for note in (unsettled_note(audit), minority_view_note(audit),
                               speed_note(audit)) if note]
    return fit_notes(con) + extra
