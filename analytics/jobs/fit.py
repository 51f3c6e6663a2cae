"""Fit the annotator model on the warehouse and write its public output tables.

Tables written, one set per fit (see DESIGN.md): ``fits``, ``reviewer_estimates``,
``pair_estimates`` (with the prompt text), ``comparison_weights``, ``pair_school_votes``. The
posterior is saved beside the warehouse as ``<db>.fits/<fit_id>.nc`` (see
:func:`dissensus.warehouse.artefacts.fits_folder`) plus a JSON with the model type, version and
config hash. :func:`fit_report_lines` is the printed summary of ``dissensus fit``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from dissensus.analytics.jobs.content import attach_content, content_lines, with_vote_axis
from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.annotator.decomposition import VERDICTS
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.lapse_cues import LONGER_LABEL, SHORTER_LABEL, label_task
from dissensus.models.annotator.notes import (
    flagged_for,
    flagged_for_lean_alone,
    label_task_estimates,
)
from dissensus.warehouse.artefacts import embeddings_folder, fits_folder
from dissensus.warehouse.db import database_path
from dissensus.warehouse.pair_votes import store_pair_school_votes
from dissensus.warehouse.queries import model_frame


@dataclass
class FitOutcome:
    fit_id: str
    model: AnnotatorModel
    artefact: Path | None


def new_fit_id(now: datetime) -> str:
    return f"fit-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


LABEL_NAME_WIDTH = 60


def label_names(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> dict[str, str]:
    """In a label task whose replies are two label texts of different lengths, the model's
    generic names for them (it tells labels apart by length alone) mapped to the texts, quoted:
    "favours the label "No, it does not."" is a verdict a lead can read without the data."""
    if not label_task(frame):
        return {}
    ids = pl.concat([frame["response_1_id"], frame["response_2_id"]]).drop_nulls().unique()
    labels = con.sql(
        "SELECT DISTINCT t.body, t.n_chars FROM responses r JOIN texts t USING (text_id) "
        "WHERE r.response_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY t.n_chars DESC",
        params=[ids.cast(pl.String).to_list()]).fetchall()
    if len(labels) != 2 or labels[0][1] == labels[1][1]:
        return {}

    def quoted(text: str) -> str:
        text = " ".join(text.split())
        short = text if len(text) <= LABEL_NAME_WIDTH else text[: LABEL_NAME_WIDTH - 1] + "…"
        return f'the label "{short}"'

    return {LONGER_LABEL: quoted(labels[0][0]), SHORTER_LABEL: quoted(labels[1][0])}


def with_label_names(reviewers: pl.DataFrame, names: dict[str, str]) -> pl.DataFrame:
    """``reviewers`` with the label tasks' generic label names in the reasons and leans replaced
    by ``names`` (:func:`label_names`)."""
    columns = [c for c in ("flag_reason", "lean") if c in reviewers.columns]
    for generic, name in names.items():
        reviewers = reviewers.with_columns(
            pl.col(c).str.replace_all(generic, name, literal=True) for c in columns)
    return reviewers


def run_fit(
    con: duckdb.DuckDBPyConnection,
    config: AnnotatorConfig,
    *,
    db_path: Path | None = None,
    progress: Callable[..., None] | None = None,
    embed_progress: Callable[[int, int], None] | None = None,
) -> FitOutcome:
    """Fit on every judgment with a reviewer id and store the results in one transaction.

    When the configuration uses reply content (see :mod:`.content`), the replies are embedded
    first (cached beside the warehouse; ``embed_progress(done, total)`` follows the texts not
    cached yet)."""
    frame = model_frame(con)
    where = db_path if db_path is not None else database_path(con)
    frame, content, notes = attach_content(
        con, frame, config, None if where is None else embeddings_folder(where), embed_progress)
    model = AnnotatorModel(config).fit(frame, progress=progress)
    if content is not None and config.content_axis:
        model, content, axis_notes = with_vote_axis(frame, model, content, config, progress)
        notes = [*notes, *axis_notes]
    diagnostics = model.fit_summary_["diagnostics"]
    diagnostics["warnings"] = [*diagnostics.get("warnings", []), *notes]
    if content is not None:
        diagnostics["content"] = {
            "encoder": content.encoder_id, "replies": len(content.response_ids),
            "embedded_now": content.n_embedded, "seconds": round(content.seconds, 2),
            "components": int(content.coords.shape[1]), "unit": content.unit,
            "content_axis_pairs": content.axis_pairs,
        }
        diagnostics["content_schools"] = content_lines(diagnostics, content)
    now = datetime.now(UTC).replace(tzinfo=None)
    fit_id = new_fit_id(now)
    artefact: Path | None = None
    if db_path is not None:
        folder = fits_folder(db_path)
        folder.mkdir(parents=True, exist_ok=True)
        artefact = folder / fit_id
        model.save(artefact)
    summary = model.fit_summary_
    reviewers = with_label_names(model.reviewer_estimates_, label_names(con, frame))
    reviewers = reviewers.with_columns(pl.lit(fit_id).alias("fit_id"))
    pairs = model.pair_estimates_.with_columns(pl.lit(fit_id).alias("fit_id"))
    weights = model.comparison_weights_.with_columns(pl.lit(fit_id).alias("fit_id"))
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO fits (fit_id, created_at, method, n_schools, n_comparisons, seconds, "
            "diagnostics, config, artefact_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [fit_id, now, summary["method"], summary["n_schools"], summary["n_comparisons"],
             summary["seconds"], json.dumps(summary["diagnostics"], default=str),
             config.model_dump_json(), str(artefact) if artefact else None],
        )
        con.register("new_reviewers", reviewers.to_arrow())
        con.execute("""
            INSERT INTO reviewer_estimates (fit_id, reviewer_id, n_comparisons, reliability,
                reliability_low, reliability_high, position_bias, school, school_probability,
                flagged, flag_reason, lean, agreement, agreement_low, agreement_high,
                lapse_evidence, flag_kinds, top_label_share, tie_taste)
            SELECT fit_id, reviewer_id, n_comparisons, reliability, reliability_low,
                   reliability_high, position_bias, school, school_probability, flagged,
                   flag_reason, lean, agreement, agreement_low, agreement_high, lapse_evidence,
                   flag_kinds, top_label_share, tie_taste
            FROM new_reviewers
        """)
        con.register("new_pairs", pairs.to_arrow())
        con.execute("""
            INSERT INTO pair_estimates (fit_id, pair_id, prompt_id, prompt, n_votes, p_first,
                noise_share, pluralism_share, ambiguity_share, verdict)
            SELECT p.fit_id, p.pair_id, p.prompt_id, t.body, p.n_votes, p.p_first,
                   p.noise_share, p.pluralism_share, p.ambiguity_share, p.verdict
            FROM new_pairs p LEFT JOIN texts t ON t.text_id = p.prompt_id
        """)
        con.register("new_weights", weights.to_arrow())
        con.execute("""
            INSERT INTO comparison_weights (fit_id, comparison_id, weight, school_weights)
            SELECT fit_id, comparison_id, weight, school_weights FROM new_weights
        """)
        store_pair_school_votes(con, fit_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for name in ("new_reviewers", "new_pairs", "new_weights"):
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)
    return FitOutcome(fit_id, model, artefact)


def flag_kind_counts(reviewers: pl.DataFrame) -> str:
    """What the flagged reviewers are flagged for, each counted once (reversed votes before
    lapses before a lean alone, so the counts add up to the flagged): " (10 for lapses, 139 for
    a lean toward one label alone)"; empty where nobody is flagged or the fit stores no kinds."""
    if "flag_kinds" not in reviewers.columns or not reviewers["flagged"].any():
        return ""
    reversed_votes = flagged_for(reviewers, "reversed")
    lapses = flagged_for(reviewers, "lapses") & ~reversed_votes
    lean = "a lean toward one label" if label_task_estimates(reviewers) else "position bias"
    counts = [(int(reversed_votes.sum()), "reversed votes"), (int(lapses.sum()), "lapses"),
              (int(flagged_for_lean_alone(reviewers).sum()), f"{lean} alone")]
    parts = [f"{n:,} for {words}" for n, words in counts if n]
    return f" ({', '.join(parts)})" if parts else ""


def fit_report_lines(outcome: FitOutcome) -> list[str]:
    """A printed summary: schools and shares, reviewers flagged, pairs by verdict, diagnostics."""
    summary = outcome.model.fit_summary_
    diagnostics = summary["diagnostics"]
    lines = [
        f"fit {outcome.fit_id}: method {summary['method']}, {summary['n_comparisons']:,} "
        f"comparisons, {summary['seconds']:.1f} s",
    ]
    shares = diagnostics.get("school_weights", [])
    lines.append(
        f"  schools: {summary['n_schools']}"
        + (" (" + ", ".join(f"school {i}: {w:.0%}" for i, w in enumerate(shares)) + ")"
           if shares else "")
    )
    if diagnostics.get("method_reason"):
        lines.append(f"  method: {diagnostics['method_reason']}")
    table = diagnostics.get("loo_table")
    if table:
        sample = diagnostics.get("k_selection_sample")
        on = (f" on a sample of {sample['pairs']:,} pairs ({sample['comparisons']:,} comparisons)"
              if sample else "")
        lines.append(f"  schools compared by {diagnostics.get('loo_method', 'LOO')}{on}:")
        for row in table:
            mark = "  <- chosen" if row.get("chosen") else ""
            versus = (f" (difference {row['elpd_diff']:+.1f} ± {row['dse']:.1f})"
                      if "elpd_diff" in row else f" ± {row['se']:.1f}")
            lines.append(f"    K={int(row['n_schools'])}: elpd_loo {row['elpd_loo']:,.1f}"
                         f"{versus}{mark}")
        if diagnostics.get("loo_model"):
            lines.append(f"    compared on: {diagnostics['loo_model']}")
    reviewers = outcome.model.reviewer_estimates_
    lines.append(f"  reviewers flagged: {int(reviewers['flagged'].sum())} of {reviewers.height}"
                 + flag_kind_counts(reviewers))
    lines.extend(f"  [yellow]{note}[/]" for note in diagnostics.get("verdict_notes") or [])
    lines.extend(f"  [yellow]{note}[/]" for note in diagnostics.get("pair_notes") or [])
    verdicts = diagnostics.get("verdicts", {})
    lines.append("  pairs by verdict: " + ", ".join(
        f"{name} {verdicts.get(name, 0):,}" for name in VERDICTS))
    if diagnostics.get("response_pooling"):
        lines.append(
            f"  response pooling: {diagnostics['n_responses']:,} responses, quality sd "
            f"{diagnostics['response_quality_sd']:.2f}, margin residual sd "
            f"{diagnostics['margin_residual_sd']:.2f}"
        )
    if diagnostics.get("response_features"):
        made_of = {"tags": "tag", "embeddings": "reply-content", "both": "tag and content"}
        lines.append(
            f"  response features: {diagnostics['n_features']} "
            f"{made_of.get(str(diagnostics.get('feature_source', 'tags')), 'tag')} features "
            "explain the "
            f"deviations of {diagnostics['feature_share']:.0%} of pairs "
            f"(residual sd {diagnostics['feature_deviation_sd']:.2f})"
        )
        contrasts = diagnostics.get("school_contrasts", [])
        if contrasts:
            lines.append("  where the schools differ (feature: weight per school, "
                         "'tag|category' = the tag within that category):")
            lines.extend(
                f"    {c['feature']}: " + ", ".join(f"{w:+.2f}" for w in c["weights"])
                for c in contrasts
            )
        lines.extend(f"  {line}" for line in diagnostics.get("content_schools") or [])
    if diagnostics.get("r_hat_max") is not None:
        lines.append(
            f"  r_hat max {diagnostics['r_hat_max']:.3f} (in {diagnostics.get('r_hat_worst')}), "
            f"ESS min {diagnostics['ess_min']:.0f}, divergences {diagnostics['divergences']}"
        )
    for warning in diagnostics.get("warnings", []):
        lines.append(f"  warning: {warning}")
    return lines
