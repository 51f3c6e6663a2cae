"""``dissensus reviewers`` and ``dissensus reviewer ID``: the reviewer audit on the command line.

The work is :func:`dissensus.analytics.audit.reviewer_audit` and
:func:`dissensus.analytics.audit.report_card` (checks in :mod:`dissensus.analytics.audit_flags`).
"""

from __future__ import annotations

from typing import Annotated

import polars as pl
import typer
from rich.padding import Padding
from rich.text import Text

from dissensus.analytics.audit_config import AuditConfig
from dissensus.analytics.cli.common import (
    console,
    errors,
    fail,
    open_warehouse,
    render_frame,
    require_choice,
    write_json,
    write_records,
)
from dissensus.warehouse.errors import DissensusError

TABLE_COLUMNS = [
    "rank",
    "reviewer_id",
    "verdict",
    "n_votes",
    "reliability",
    "reliability_low",
    "reliability_high",
    "agreement",
    "agreement_low",
    "agreement_high",
    "model_lapse_evidence",
    "school",
    "first_rate",
    "tie_rate",
    "consistency",
    "gold_accuracy",
    "median_seconds",
    "reasons",
]
#: Narrower consoles get the reasons below the table rather than in a column.
WIDE_CONSOLE = 140
COMPACT_COLUMNS = ["rank", "reviewer_id", "verdict", "n_votes", "reliability", "agreement",
                   "school", "reasons"]


def _emit(frame: pl.DataFrame, fmt: str, title: str, max_rows: int, compact: bool = True) -> None:
    if fmt in ("csv", "json"):
        write_records(frame, fmt)
        return
    shown = frame.with_columns(pl.col(pl.Float64).round(3))
    for name in ("reliability", "agreement"):
        shown = _with_interval(shown, name)
    keep = [c for c in COMPACT_COLUMNS if c in shown.columns]
    if not compact:
        console.print(render_frame(shown, title, max_rows))
        return
    if "reasons" not in keep or console.width >= WIDE_CONSOLE:
        console.print(render_frame(shown.select(keep), title, max_rows))
        return
    # a narrow terminal (or output to a file, 80 columns): a reasons column folded into a
    # few characters makes every row dozens of lines tall, so the reasons go below the table;
    # the rank column gives way and each interval takes a line of its own, so that a verdict
    # ("position-biased") and an interval ("(0.63–0.74)") wrap between words, not inside one
    narrow = shown.select([c for c in keep if c not in ("reasons", "rank")]).with_columns(
        pl.col(c).str.replace(" (", "\n(", literal=True)
        for c in ("reliability", "agreement") if c in keep and shown[c].dtype == pl.String)
    console.print(render_frame(narrow, title, max_rows))
    console.print("reasons:")
    for rank, reviewer, reasons in shown.head(max_rows).select(
            "rank", "reviewer_id", "reasons").iter_rows():
        console.print(Text(f"{rank}. {reviewer}"))
        console.print(Padding(Text(reasons or "-"), (0, 0, 0, 4)))


def _with_interval(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """``name`` shown as "0.85 (0.66–0.95)" from its ``_low`` / ``_high`` columns (just the value
    where the interval is missing, as in fits made before it was stored)."""
    low, high = f"{name}_low", f"{name}_high"
    if not {name, low, high} <= set(frame.columns):
        return frame
    # a figure the fit could not give (NaN, as `agreement` from a sampled fit) reads "-"
    frame = frame.with_columns(pl.col(c).cast(pl.Float64).fill_nan(None) for c in (name, low, high))
    value = pl.col(name).round(2)
    return frame.with_columns(
        pl.when(pl.col(low).is_not_null() & pl.col(high).is_not_null())
        .then(pl.format("{} ({}–{})", value, pl.col(low).round(2), pl.col(high).round(2)))
        .otherwise(value.cast(pl.String).fill_null("-")).alias(name)
    ).drop(low, high)


def _require_school(frame: pl.DataFrame, school: int) -> None:
    """Fail in words when no reviewer is in ``school`` (an empty table would not say why)."""
    known = sorted(frame["school"].drop_nulls().unique().to_list()) if "school" in frame.columns \
        else []
    if school in known:
        return
    if not known:
        fail(DissensusError(
            f"No reviewer has a school yet, so none is in school {school}.",
            expected="an annotator-model fit (schools come from it)",
            fix="run `dissensus fit` first, then `dissensus reviewers --school N`",
        ))
    fail(DissensusError(
        f"No reviewer is in school {school}: the newest fit has school"
        f"{'s' if len(known) > 1 else ''} " + ", ".join(str(k) for k in known) + ".",
        expected="one of " + ", ".join(str(k) for k in known),
        fix=f"pass --school {known[0]}, or leave --school out to see every reviewer",
    ))


def reviewers(
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    flagged: Annotated[bool, typer.Option("--flagged", help="Only flagged reviewers.")] = False,
    verdict: Annotated[
        str | None, typer.Option(help="Only reviewers whose verdict contains this text.")
    ] = None,
    school: Annotated[int | None, typer.Option(help="Only this school (needs a fit).")] = None,
    min_votes: Annotated[int, typer.Option(min=0, help="Only reviewers with this many votes.")
                         ] = 1,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show (table format).")] = 40,
    all_columns: Annotated[
        bool, typer.Option("--all-columns", help="Every figure, not the summary columns.")
    ] = False,
) -> None:
    """Ranked reviewer audit: verdict, reliability with interval, and the reasons."""
    from dissensus.analytics.audit import audit_notes, reviewer_audit

    require_choice(fmt, ("table", "csv", "json"), "format", "--format")
    with open_warehouse(read_only=True, snapshot_ok=True) as con:
        frame = reviewer_audit(con)
        notes = audit_notes(con, frame)
    if flagged:
        frame = frame.filter(pl.col("flagged"))
    if verdict:
        frame = frame.filter(pl.col("verdict").str.contains(verdict, literal=True))
    if school is not None:
        _require_school(frame, school)
        frame = frame.filter(pl.col("school") == school)
    frame = frame.filter(pl.col("n_votes") >= min_votes)
    if not all_columns:
        frame = frame.select([c for c in TABLE_COLUMNS if c in frame.columns])
    source = ""
    if frame.height and "reliability_source" in frame.columns:
        source = f" — reliability: {frame['reliability_source'][0]}"
    _emit(frame, fmt, f"reviewers, most concerning first{source}", limit, not all_columns)
    for note in notes:  # on stderr for csv / json, so the data stay machine-readable
        (console if fmt == "table" else errors).print(f"[yellow]note:[/] {note}",
                                                      highlight=False)


def reviewer(
    reviewer_id: Annotated[str, typer.Argument(help="The reviewer's id.")],
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    limit: Annotated[int, typer.Option(min=1, help="Disagreements and partners to show.")
                     ] = 10,
) -> None:
    """One reviewer's report card: every figure, verdicts, and disagreements with the texts."""
    from dissensus.analytics.audit import report_card

    with open_warehouse(read_only=True, snapshot_ok=True) as con:
        card = report_card(con, reviewer_id, limit=limit)
    s = card.summary
    card_level = AuditConfig().level  # the card's checks run under the default config
    if fmt == "json":
        write_json({
            "summary": s,
            "figures": card.figures.to_dicts(),
            "partners": card.partners.to_dicts(),
            "drift": card.drift.to_dicts(),
            "disagreements": card.disagreements.to_dicts(),
        })
        return
    console.print(
        f"[bold]reviewer {reviewer_id}[/]: [bold]{s['verdict']}[/] "
        f"(rank {s['rank']}, {s['n_votes']} votes)",
        highlight=False,
    )
    if s["reasons"]:
        console.print(f"  why: {s['reasons']}", highlight=False)
    console.print(
        render_frame(
            card.figures.with_columns(pl.col(pl.Float64).round(3)),
            f"figures ({card_level:.0%} intervals, but the annotator model's as its row says)"
            if str(s.get("reliability_source", "")).startswith("annotator model")
            else f"figures ({card_level:.0%} intervals)",
        )
    )
    if card.partners.height:
        console.print(
            render_frame(
                card.partners.with_columns(pl.col(pl.Float64).round(3)),
                "agreement with reviewers sharing 3+ pairs",
                limit,
            )
        )
    if card.drift.height:
        console.print(
            render_frame(
                card.drift.with_columns(pl.col(pl.Float64).round(3)),
                "agreement per week (vs the pool)",
            )
        )
    dis = card.disagreements
    if dis.height == 0:
        console.print("no votes against a clear consensus of the reviewer's school")
    for row in dis.head(limit).iter_rows(named=True):
        console.print(
            f"\n[bold]pair {row['pair_id']}[/]: chose [red]{row['reviewer_answer']}[/], "
            f"{row['consensus_share']:.0%} of {row['n_others']} others chose "
            f"[green]{row['consensus']}[/]",
            highlight=False,
        )
        console.print(f"  prompt:     {row['prompt']}", highlight=False)
        console.print(f"  response_1: {row['response_1']}", highlight=False)
        console.print(f"  response_2: {row['response_2']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``reviewers`` and ``reviewer`` to ``app``."""
    app.command("reviewers")(reviewers)
    app.command("reviewer")(reviewer)
