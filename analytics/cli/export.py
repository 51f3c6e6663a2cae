"""``dissensus export``: preference data for TRL's reward trainer, OpenRLHF, or any reader.

The work is :func:`dissensus.analytics.jobs.export.export_preferences`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dissensus.analytics.cli.common import console, fail, open_warehouse, require_choice
from dissensus.analytics.jobs.export import EXPORT_FORMATS, export_preferences
from dissensus.warehouse.errors import DissensusError


def export(
    output: Annotated[Path, typer.Argument(help="File to write (refused if it exists, unless "
                                           "--force).")],
    fmt: Annotated[str, typer.Option(
        "--format", help="trl: JSON lines with prompt / chosen / rejected (+ margin with a fit), "
        "as TRL's RewardTrainer and OpenRLHF read them; jsonl / parquet: also comparison_id, "
        "reviewer_id and the fit's weight.")] = "trl",
    fit: Annotated[str | None, typer.Option(
        "--fit", help="Fit whose weights and consensus margins to add (default: the latest).")]
    = None,
    no_fit: Annotated[bool, typer.Option(
        "--no-fit", help="Plain preferences: no weights, no margins.")] = False,
    school: Annotated[int | None, typer.Option(
        "--school", help="Weight each judgment for this school of the fit (P(careful) x "
        "P(the reviewer is in it)) instead of P(careful).")] = None,
    min_weight: Annotated[float, typer.Option(
        "--min-weight", min=0.0, max=1.0, help="Leave out judgments whose weight is below this "
        "(likely lapses, or other schools' votes with --school).")] = 0.0,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Write the warehouse's preferences for a reward-model trainer (ties are left out)."""
    require_choice(fmt, EXPORT_FORMATS, "format", "--format")
    if output.exists() and not force:
        fail(DissensusError(f"{output} exists; export does not replace files.",
                            where=str(output), fix="pass another path, or --force to replace it"))
    if not output.parent.is_dir():
        fail(DissensusError(f"The folder {output.parent} does not exist.", where=str(output),
                            fix="create it first, or pass a path in an existing folder"))
    with open_warehouse(read_only=True, snapshot_ok=True) as con:
        report = export_preferences(con, output, fmt, fit, school, min_weight, not no_fit)
    console.print(
        f"{report.rows:,} preferences written to {report.path} ({fmt}); "
        f"{report.ties_left_out:,} ties left out"
        + (f", {report.below_min_weight:,} below --min-weight {min_weight:g}"
           if report.below_min_weight else "")
        + (f"; weights and margins from fit {report.fit_id}" if report.fit_id
           else "; no fit: no weights or margins"))


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``app``."""
    app.command("export")(export)
