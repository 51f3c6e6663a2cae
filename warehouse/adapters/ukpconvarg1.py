"""UKPConvArg1: which of two web arguments is more convincing? (Habernal & Gurevych, ACL 2016).

Source: https://github.com/UKPLab/acl2016-convincing-arguments (CC-BY 4.0), flattened from the
raw MTurk XML into three tables (see ``SOURCE.md`` of the data folder):
``judgments.csv.gz`` (one row per worker judgment), ``pairs.csv`` (the argument pairs) and
``arguments.csv`` (the argument texts with their debate title and stance).

The input path may be the folder or the judgments file; ``pairs.csv`` and ``arguments.csv`` are
read from the same folder and joined in. One staged row per judgment:

==================  ==========================================================================
contract column     source
==================  ==========================================================================
reviewer_id         ``worker_id`` (the MTurk worker id)
comparison_id       ``assignment_id + ":" + pair_id``
prompt              "Debate: <debate title>\\nStance: <stance>\\nWhich argument is more
                    convincing?" -- one prompt per topic (debate side), from ``arguments.csv``
response_a / _b     the text of ``arg1`` / ``arg2`` (``<br/>`` turned into newlines)
response_a_id / _b  ``<topic>/<arg1_id>`` / ``<topic>/<arg2_id>``
shown_first         ``a``: arg1 was shown first ("A1" in the task)
choice              ``value``: a1 -> a, a2 -> b, equal -> tie
rationale           ``reason`` (the worker's free-text explanation)
created_at          ``submit_time`` as ISO-8601 UTC
seconds_spent       (submit_time - accept_time) / the number of pairs in that assignment: the
                    times are per assignment (1 to 3 pairs), so the assignment's duration is
                    spread evenly over its judgments
category            ``topic`` (the debate-side slug)
batch               ``hit_id``
reviewer attribute  ``stance@<topic>`` = ``worker_stance`` (same / opposite / none) when given
==================  ==========================================================================

``gold_label``, ``turk_rank`` and ``turk_competence`` are not used: they are outputs of MACE, a
model fitted by the corpus authors, not observations. ``_raw`` is the judgment row re-serialised
as CSV; ``_line`` is the line of the judgment in its file (the header is line 1).

Faithfulness note: 13 groups of arguments (27 rows) are verbatim double posts with the same text.
Texts are kept verbatim and stored once, but each argument keeps its own response identity
(``response_a_id`` / ``response_b_id`` = ``<topic>/<arg id>``), so the 16,927 source pairs stay
16,927 pairs, and the 15 source pairs that compare two double posts (70 of their 75 judgments are
``equal``) are kept as the natural attention checks they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import polars as pl
import pyarrow as pa

from dissensus.warehouse.adapters._common import (
    ERROR_COLUMN,
    SOURCE_COLUMN,
    blank,
    delimited_row_text,
    errors,
    header_fields,
    iter_staged,
    physical_lines,
    quoted,
    read_delimited,
    when_error,
)
from dissensus.warehouse.contract import LINE_COLUMN, RAW_COLUMN, REVIEWER_ATTRIBUTES_COLUMN
from dissensus.warehouse.errors import InputFileError

NAME: Final = "ukpconvarg1"
DESCRIPTION: Final = (
    "UKPConvArg1 argument convincingness (Habernal & Gurevych 2016): judgments.csv.gz joined "
    "with pairs.csv and arguments.csv; one comparison per worker judgment"
)
JUDGMENT_FILES: Final = ("judgments.csv.gz", "judgments.csv")
#: Columns the judgments header must have (turk_rank, turk_competence, hit_comment are unused).
JUDGMENT_COLUMNS: Final = (
    "topic",
    "pair_id",
    "worker_id",
    "hit_id",
    "assignment_id",
    "accept_time",
    "submit_time",
    "value",
    "reason",
    "worker_stance",
)
SNIFF_COLUMNS: Final = ("topic", "pair_id", "worker_id", "assignment_id", "value")
CHOICES: Final = {"a1": "a", "a2": "b", "equal": "tie"}
TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S%.f UTC"
TIME_EXAMPLE: Final = "2016-02-22 21:40:51.0 UTC"
ISO_FORMAT: Final = "%Y-%m-%dT%H:%M:%S%.f%:z"
QUESTION: Final = "Which argument is more convincing?"
BREAK: Final = r"(?i)<br\s*/?>"


def _bad_time(column: str) -> pl.Expr:
    return pl.concat_str(
        pl.lit(f"{column} is "),
        quoted(pl.col(column)),
        pl.lit(
            f"; expected a UTC time like '{TIME_EXAMPLE}'. Fix the time in the judgments "
            "file (it is copied from the MTurk assignment)"
        ),
    )


def _judgments_file(path: Path) -> Path | None:
    if path.is_dir():
        for name in JUDGMENT_FILES:
            if (path / name).is_file():
                return path / name
        return None
    return path if path.is_file() else None


def sniff_ukpconvarg1(path: Path) -> str | None:
    """Say why ``path`` (a folder or a judgments file) is UKPConvArg1, or None if it is not."""
    judgments = _judgments_file(path)
    if judgments is None:
        return None
    header = header_fields(judgments)
    if header is None or not all(name in header for name in SNIFF_COLUMNS):
        return None
    where = f"{judgments.name} in the folder" if path.is_dir() else "the header"
    return f"{where} has topic, pair_id, worker_id, assignment_id, value: UKPConvArg1 judgments"


def _read_tables(judgments: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    folder = judgments.parent
    frame = read_delimited(judgments, required=JUDGMENT_COLUMNS, what="UKPConvArg1 judgments")
    pairs = read_delimited(
        folder / "pairs.csv",
        required=("topic", "pair_id", "arg1_id", "arg2_id"),
        what="UKPConvArg1 pairs.csv (needed to find the two arguments of each judgment)",
    )
    arguments = read_delimited(
        folder / "arguments.csv",
        required=("topic", "arg_id", "debate_title", "stance", "text"),
        what="UKPConvArg1 arguments.csv (needed for the argument texts and the prompt)",
    )
    return frame, pairs, arguments


def _prompts(arguments: pl.DataFrame) -> pl.DataFrame:
    """One prompt per topic, from its debate title and stance."""
    topics = arguments.group_by("topic", maintain_order=True).agg(
        pl.col("debate_title").drop_nulls().first().str.strip_chars(),
        pl.col("stance").drop_nulls().first().str.strip_chars(),
    )
    return topics.select(
        "topic",
        pl.concat_str(
            pl.lit("Debate: "),
            "debate_title",
            pl.lit("\nStance: "),
            "stance",
            pl.lit("\n" + QUESTION),
        ).alias("prompt"),
    )


def _stance_attributes(frame: pl.DataFrame) -> pl.DataFrame:
    """``_reviewer_attributes`` JSON per (topic, worker_stance), for the non-empty stances."""
    combos = (
        frame.select("topic", "worker_stance")
        .unique()
        .filter(pl.col("topic").is_not_null() & ~blank(pl.col("worker_stance")))
    )
    values = [
        json.dumps({f"stance@{topic}": stance.strip()}, ensure_ascii=False)
        for topic, stance in combos.iter_rows()
    ]
    return combos.with_columns(pl.Series(REVIEWER_ATTRIBUTES_COLUMN, values, dtype=pl.String))


def stage_ukpconvarg1(path: Path) -> pl.DataFrame:
    """All judgments as one polars frame with the staged columns (not yet ordered)."""
    judgments = _judgments_file(path)
    if judgments is None:
        raise InputFileError(
            "no UKPConvArg1 judgments file found",
            where=str(path),
            expected="judgments.csv.gz (or judgments.csv), or a folder holding it, with "
            "pairs.csv and arguments.csv next to it",
            fix="point at the ukpconvarg1_convincingness folder or its judgments.csv.gz",
        )
    frame, pairs, arguments = _read_tables(judgments)
    columns = frame.columns
    texts = arguments.select(
        "topic",
        "arg_id",
        pl.col("text").str.replace_all(BREAK, "\n").alias("text"),
    )
    pairs = pairs.select("topic", "pair_id", "arg1_id", "arg2_id").unique(
        subset=["topic", "pair_id"], keep="first", maintain_order=True
    )
    texts = texts.unique(subset=["topic", "arg_id"], keep="first", maintain_order=True)
    arg1 = texts.rename({"arg_id": "arg1_id", "text": "response_a"})
    arg2 = texts.rename({"arg_id": "arg2_id", "text": "response_b"})

    staged = (
        frame.with_columns(
            physical_lines(columns).alias(LINE_COLUMN),
            delimited_row_text(columns).alias(RAW_COLUMN),
        )
        .join(pairs, on=["topic", "pair_id"], how="left", maintain_order="left")
        .join(arg1, on=["topic", "arg1_id"], how="left", maintain_order="left")
        .join(arg2, on=["topic", "arg2_id"], how="left", maintain_order="left")
        .join(_prompts(arguments), on="topic", how="left", maintain_order="left")
        .join(
            _stance_attributes(frame),
            on=["topic", "worker_stance"],
            how="left",
            maintain_order="left",
        )
    )
    accept = (
        pl.col("accept_time")
        .str.strip_chars()
        .str.to_datetime(TIME_FORMAT, strict=False, time_zone="UTC")
    )
    submit = (
        pl.col("submit_time")
        .str.strip_chars()
        .str.to_datetime(TIME_FORMAT, strict=False, time_zone="UTC")
    )
    in_assignment = pl.len().over("assignment_id")
    choice = (
        pl.col("value")
        .str.strip_chars()
        .str.to_lowercase()
        .replace_strict(CHOICES, default=None, return_dtype=pl.String)
    )
    staged = staged.with_columns(
        accept.alias("_accept"),
        submit.alias("_submit"),
        in_assignment.alias("_n_pairs"),
        choice.alias("choice"),
    )
    duration = (pl.col("_submit") - pl.col("_accept")).dt.total_milliseconds() / 1000.0
    missing_pair = pl.concat_str(
        pl.lit("pair_id "),
        quoted(pl.col("pair_id")),
        pl.lit(" of topic "),
        quoted(pl.col("topic")),
        pl.lit(
            " is not in pairs.csv; expected every judgment to name a pair listed in "
            "pairs.csv next to the judgments file. Use the pairs.csv of the same release"
        ),
    )
    missing_text = pl.concat_str(
        pl.lit("argument text missing for "),
        pl.when(pl.col("response_a").is_null()).then(pl.lit("arg1 ")).otherwise(pl.lit("")),
        pl.when(pl.col("response_b").is_null()).then(pl.lit("arg2 ")).otherwise(pl.lit("")),
        pl.lit("of pair "),
        quoted(pl.col("pair_id")),
        pl.lit(
            "; expected arguments.csv to list every (topic, arg_id) used in pairs.csv. "
            "Use the arguments.csv of the same release"
        ),
    )
    row_error = errors(
        when_error(
            blank(pl.col("worker_id")),
            "worker_id is empty; expected the MTurk worker id of the judgment. Restore it from "
            "the source XML (turkID) or remove the row",
        ),
        when_error(
            pl.col("choice").is_null(),
            pl.concat_str(
                pl.lit("value is "),
                quoted(pl.col("value")),
                pl.lit(
                    "; expected a1, a2 or equal (which argument was more convincing). "
                    "Correct the value in the judgments file"
                ),
            ),
        ),
        when_error(pl.col("arg1_id").is_null(), missing_pair),
        when_error(
            pl.col("arg1_id").is_not_null()
            & (pl.col("response_a").is_null() | pl.col("response_b").is_null()),
            missing_text,
        ),
        when_error(
            pl.col("_accept").is_null(),
            _bad_time("accept_time"),
        ),
        when_error(
            pl.col("_submit").is_null(),
            _bad_time("submit_time"),
        ),
        when_error(
            duration < 0,
            "submit_time is before accept_time; expected the assignment to be submitted after "
            "it was accepted. Check the two times in the judgments file",
        ),
    )
    return staged.with_columns(
        pl.lit(str(judgments)).alias(SOURCE_COLUMN),
        row_error.alias(ERROR_COLUMN),
        pl.col("worker_id").str.strip_chars().alias("reviewer_id"),
        pl.concat_str("assignment_id", pl.lit(":"), "pair_id").alias("comparison_id"),
        pl.concat_str("topic", pl.lit("/"), "arg1_id").alias("response_a_id"),
        pl.concat_str("topic", pl.lit("/"), "arg2_id").alias("response_b_id"),
        pl.lit("a").alias("shown_first"),
        pl.col("_submit").dt.strftime(ISO_FORMAT).alias("created_at"),
        pl.when(duration >= 0)
        .then((duration / pl.col("_n_pairs")).round(3).cast(pl.String))
        .alias("seconds_spent"),
        pl.col("topic").alias("category"),
        pl.col("hit_id").alias("batch"),
        pl.col("reason").alias("rationale"),
    )


def read_ukpconvarg1(path: Path, chunk_rows: int = 100_000) -> Iterator[pa.Table]:
    """Yield UKPConvArg1 judgments as staged chunks (see the module docstring for the mapping).

    ``path`` is the data folder or its ``judgments.csv.gz``; ``pairs.csv`` and ``arguments.csv``
    must sit next to the judgments. Raises :class:`~warehouse.errors.InputFileError` when a file
    is missing or unreadable; rows that cannot be mapped are yielded with ``_error`` set.
    """
    yield from iter_staged(stage_ukpconvarg1(Path(path)), chunk_rows)
