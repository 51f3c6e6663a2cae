"""Preference data for the trainers researchers use: TRL's ``RewardTrainer``, OpenRLHF.

One row per judgment that picked a reply (ties carry no preference and are left out, counted):
``prompt``, ``chosen`` and ``rejected`` (texts). With a fit, two more columns:

* ``weight``: the fit's P(careful) for the judgment, or with ``school=K`` its weight for school
  ``K`` (P(careful) times P(the reviewer is in school K)), so a trainer can weigh lapses down or
  train one school's head;
* ``margin``: how sure the pool is that the chosen reply is better, on the logit scale,
  ``log(p / (1 - p))`` with ``p`` the fit's consensus probability for the chosen reply (clipped
  to ``[0.01, 0.99]``) -- negative where the reviewer went against the consensus. TRL's reward
  loss subtracts it inside the sigmoid (Touvron et al. 2023's margin).

``trl`` writes JSON lines with ``prompt``, ``chosen``, ``rejected`` (and ``margin``), the columns
TRL's reward trainer and OpenRLHF's ``--prompt_key/--chosen_key/--rejected_key`` read as they are;
``jsonl`` and ``parquet`` add ``comparison_id``, ``reviewer_id`` and ``weight``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl

from dissensus.warehouse.errors import DissensusError, EmptyDataError
from dissensus.warehouse.fits import latest_fit
from dissensus.warehouse.queries import frame as query_frame

ExportFormat = Literal["trl", "jsonl", "parquet"]
EXPORT_FORMATS: tuple[str, ...] = ("trl", "jsonl", "parquet")
TRL_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class ExportReport:
    path: Path
    rows: int
    ties_left_out: int
    below_min_weight: int
    fit_id: str | None


def _resolve_fit(con: duckdb.DuckDBPyConnection, fit_id: str | None) -> str | None:
    if fit_id is None:
        return latest_fit(con, having="comparison_weights")
    known = con.execute("SELECT count(*) FROM fits WHERE fit_id = ?", [fit_id]).fetchall()
    if not known[0][0]:
        raise DissensusError(
            f"There is no fit {fit_id!r} in this warehouse.",
            expected="a fit id from `dissensus status` or GET /v1/fits",
            fix="leave out --fit to use the latest fit, or run `dissensus fit`",
        )
    return fit_id


def preference_frame(con: duckdb.DuckDBPyConnection, fit_id: str | None = None,
                     school: int | None = None, min_weight: float = 0.0,
                     use_fit: bool = True) -> tuple[pl.DataFrame, int, int, str | None]:
    """``(rows, ties left out, rows below min_weight, fit id used)`` (see the module doc)."""
    fit = _resolve_fit(con, fit_id) if use_fit else None
    if school is not None and fit is None:
        raise DissensusError(
            "--school needs a fit: schools come from the annotator model.",
            fix="run `dissensus fit` first, or leave out --school",
        )
    if school is not None:
        found = con.execute("SELECT n_schools FROM fits WHERE fit_id = ?", [fit]).fetchall()
        n_schools = int(found[0][0]) if found and found[0][0] is not None else 0
        if not 0 <= school < n_schools:
            raise DissensusError(
                f"Fit {fit} has no school {school}.",
                expected=f"a school from 0 to {n_schools - 1}" if n_schools else None,
                fix="pass a school the fit found (`dissensus reviewers` lists them)",
            )
    ties = con.execute("SELECT count(*) FROM comparisons WHERE choice = 'tie'").fetchall()[0]
    weight_sql = ("1.0" if fit is None else
                  "w.weight" if school is None else f"w.school_weights[{school + 1}]")
    frame = query_frame(con, f"""
        WITH picked AS (
            SELECT c.comparison_id, c.reviewer_id, c.pair_id, c.prompt_id,
                   CASE WHEN c.choice = 'a' THEN c.response_a_id ELSE c.response_b_id END AS won,
                   CASE WHEN c.choice = 'a' THEN c.response_b_id ELSE c.response_a_id END AS lost,
                   (c.choice = 'a') = c.a_is_response_1 AS chosen_is_1
            FROM comparisons c WHERE c.choice <> 'tie'
        )
        SELECT k.comparison_id, k.reviewer_id, pt.body AS prompt, tw.body AS chosen,
               tl.body AS rejected,
               {weight_sql}::DOUBLE AS weight,
               CASE WHEN pe.p_first IS NULL THEN NULL ELSE
                   ln(greatest(least(CASE WHEN k.chosen_is_1 THEN pe.p_first
                                          ELSE 1 - pe.p_first END, 0.99), 0.01)
                      / (1 - greatest(least(CASE WHEN k.chosen_is_1 THEN pe.p_first
                                                 ELSE 1 - pe.p_first END, 0.99), 0.01)))
               END AS margin
        FROM picked k
        JOIN texts pt ON pt.text_id = k.prompt_id
        JOIN responses rw ON rw.response_id = k.won JOIN texts tw ON tw.text_id = rw.text_id
        JOIN responses rl ON rl.response_id = k.lost JOIN texts tl ON tl.text_id = rl.text_id
        LEFT JOIN comparison_weights w ON w.fit_id = ? AND w.comparison_id = k.comparison_id
        LEFT JOIN pair_estimates pe ON pe.fit_id = ? AND pe.pair_id = k.pair_id
        ORDER BY k.comparison_id
    """, [fit, fit])
    if frame.height == 0:
        raise EmptyDataError(
            "The warehouse holds no comparison that picked a reply (ties carry no preference).",
            fix="ingest comparisons first (`dissensus ingest FILE`)",
        )
    kept = frame.filter(pl.col("weight").fill_null(0.0) >= min_weight) if fit else frame
    return kept, int(ties[0]) if ties else 0, frame.height - kept.height, fit


def write_export(frame: pl.DataFrame, path: Path, fmt: str, with_fit: bool) -> None:
    """Write ``frame`` as ``fmt`` (see the module doc) to ``path``."""
    if fmt == "trl":
        columns = [*TRL_COLUMNS, *(["margin"] if with_fit else [])]
        with path.open("w", encoding="utf-8") as out:
            for row in frame.select(columns).iter_rows(named=True):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    columns = ["comparison_id", "reviewer_id", *TRL_COLUMNS,
               *(["margin", "weight"] if with_fit else [])]
    if fmt == "parquet":
        frame.select(columns).write_parquet(path)
    else:
        frame.select(columns).write_ndjson(path)


def export_preferences(con: duckdb.DuckDBPyConnection, path: Path, fmt: str = "trl",
                       fit_id: str | None = None, school: int | None = None,
                       min_weight: float = 0.0, use_fit: bool = True) -> ExportReport:
    """Write the warehouse's preferences to ``path`` (see the module doc)."""
    frame, ties, below, fit = preference_frame(con, fit_id, school, min_weight, use_fit)
    write_export(frame, path, fmt, fit is not None)
    return ExportReport(path=path, rows=frame.height, ties_left_out=ties,
                        below_min_weight=below, fit_id=fit)
