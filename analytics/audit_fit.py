"""The latest fit as the reviewer audit reads it: its reviewer estimates, notes and interval mass.

The audit judges reviewers from their votes and, where a fit exists, from the newest fit's
estimates (:func:`dissensus.warehouse.fits.latest_fit` decides which fit that is). A warehouse
of an older schema opened read-only lacks the newer columns; they read as NULL here, and the
verdicts that need them keep their older form.
"""

from __future__ import annotations

import json

import duckdb
import polars as pl

from dissensus.warehouse.fits import fit_record, latest_fit

POSITION_BIAS_REASON = "strong position bias"
LABEL_LEAN_REASON = "strong lean toward one label"
"""How the fit's flag reason begins when a reviewer is flagged for a lean alone (written by
``dissensus.models.annotator.estimator``): toward the reply shown first, or, in a label task
without display order, toward one label. Neither is a lapse. Read only for a warehouse too old
to store ``flag_kinds`` and opened read-only (a migrated one has them filled in)."""

def latest_fit_estimates(con: duckdb.DuckDBPyConnection) -> tuple[str | None, pl.DataFrame]:
    """The newest fit with reviewer estimates (:func:`dissensus.warehouse.fits.latest_fit`): its
    id and its ``reviewer_estimates`` (empty frame when there is no such fit).

    Needs tables fits(fit_id, created_at) and reviewer_estimates(fit_id, reviewer_id,
    reliability, reliability_low, reliability_high, school, school_probability, position_bias,
    flagged, flag_reason, lean). ``model_lapse_flag`` is the fit's own lapse flag (flagged for
    anything but position bias alone, which the audit checks from the votes itself).
    """
    fit_id = latest_fit(con, having="reviewer_estimates")
    if fit_id is None:
        return None, pl.DataFrame()
    # a warehouse of an older schema, opened read-only (not migrated), lacks the newer columns:
    # they read as NULL, and the verdicts that need them keep their older form
    present = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'reviewer_estimates'").fetchall()}
    newer = ", ".join(f"{column if column in present else 'NULL'} AS {alias}"
                      for column, alias in _NEWER_COLUMNS)
    if "flag_kinds" in present:
        lapse = "flagged AND (flag_kinds LIKE '%lapses%' OR flag_kinds LIKE '%reversed%')"
        label_lean = "flagged AND flag_kinds = 'lean' AND top_label_share IS NOT NULL"
    else:  # an older warehouse opened read-only: the reason's words are all there is
        lean_alone = (f"(flag_reason LIKE '{POSITION_BIAS_REASON}%' OR flag_reason LIKE "
                      f"'{LABEL_LEAN_REASON}%') AND flag_reason NOT LIKE '%;%'")
        lapse = f"flagged AND NOT coalesce({lean_alone}, false)"
        label_lean = (f"flagged AND flag_reason LIKE '{LABEL_LEAN_REASON}%' "
                      "AND flag_reason NOT LIKE '%;%'")
    est = con.sql(
        f"""
        SELECT reviewer_id, reliability, reliability_low, reliability_high, school,
               school_probability, position_bias AS model_position_bias,
               coalesce({lapse}, false) AS model_lapse_flag,
               coalesce({label_lean}, false) AS model_label_lean_flag,
               flag_reason AS model_flag_reason, {newer}
        FROM reviewer_estimates WHERE fit_id = ?""",
        params=[fit_id],
    ).pl()
    return fit_id, est


_NEWER_COLUMNS = (("lean", "model_lean"), ("agreement", "agreement"),
                  ("agreement_low", "agreement_low"), ("agreement_high", "agreement_high"),
                  ("lapse_evidence", "model_lapse_evidence"),
                  ("top_label_share", "model_top_label_share"),
                  ("tie_taste", "model_tie_taste"))
"""Columns of ``reviewer_estimates`` added by migrations 5 to 13, with the audit's names."""


def fit_notes(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The latest fit's notes on what its data cannot support (``verdict_notes`` in its
    diagnostics: e.g. near-chance agreement, too few reviewers for schools); empty without."""
    fit = fit_record(con, latest_fit(con, having="reviewer_estimates"))
    notes = fit["diagnostics"].get("verdict_notes") if fit else None
    return [str(n) for n in notes] if isinstance(notes, list) else []


def fit_interval_mass(con: duckdb.DuckDBPyConnection, fit_id: str) -> float | None:
    """The interval mass of fit ``fit_id``'s reliability and agreement intervals (its config's
    ``interval_mass``), None where its config does not say."""
    raw = next(iter(con.execute("SELECT config FROM fits WHERE fit_id = ?",
                                [fit_id]).fetchall()), None)
    try:
        mass = json.loads(raw[0]).get("interval_mass") if raw and raw[0] else None
    except (TypeError, ValueError, AttributeError):
        return None
    return float(mass) if isinstance(mass, int | float) else None
