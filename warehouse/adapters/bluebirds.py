"""Bluebirds (Welinder, Branson, Belongie & Perona, NIPS 2010): binary image labels with gold.

Source: https://github.com/welinder/cubam, ``demo/bluebirds/{labels,gt}.yaml`` (Clear-BSD),
converted to ``labels.csv`` (``worker_id``, ``image_id``, ``label`` 0/1; 39 workers x 108 images,
fully crossed) and ``gt.csv`` (``image_id``, ``gt_label`` 0/1). The annotators were telling
Indigo Buntings from Blue Grosbeaks (cubam's ``demo/bluebirds.py``); label 1 / ``true`` means
"the image shows the target species". The files do not say which of the two species is the
target, so the answers below name the target species only as such. The input path may be the
folder or ``labels.csv``; ``gt.csv`` next to it supplies the gold (gold is null without it).

A binary label is mapped to a choice between two fixed answers, one staged row per label:

===============  ==============================================================================
contract column  source
===============  ==============================================================================
prompt           "Bluebirds image <image_id>: the task is telling Indigo Buntings from Blue
                 Grosbeaks. Does the image show the target species?"
response_a       "Yes, the image shows the target species."  (label 1)
response_b       "No, the image does not show the target species."  (label 0)
choice           ``label``: 1 -> a, 0 -> b
gold_choice      ``gt_label`` of the image: 1 -> a, 0 -> b
reviewer_id      ``worker_id`` (small integers, unique only within this data set)
comparison_id    ``"bluebirds:<worker_id>:<image_id>"``
category         "bluebirds"
shown_first      null
===============  ==============================================================================

``_raw`` is the label row re-serialised as CSV; ``_line`` is its line (the header is line 1).
"""

from __future__ import annotations

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
    file_in,
    header_fields,
    iter_staged,
    mapped_label,
    physical_lines,
    quoted,
    read_delimited,
    when_error,
)
from dissensus.warehouse.contract import LINE_COLUMN, RAW_COLUMN
from dissensus.warehouse.errors import InputFileError

NAME: Final = "bluebirds"
DESCRIPTION: Final = (
    "Bluebirds (Welinder et al. 2010) binary image labels (labels.csv + gt.csv): each label "
    "as a choice between 'Yes, target species' (a) and 'No' (b), with gold"
)
LABELS_FILE: Final = "labels.csv"
GOLD_FILE: Final = "gt.csv"
LABEL_COLUMNS: Final = ("worker_id", "image_id", "label")
GOLD_COLUMNS: Final = ("image_id", "gt_label")
YES: Final = "Yes, the image shows the target species."
NO: Final = "No, the image does not show the target species."
LABEL_CHOICES: Final = {"1": "a", "0": "b", "true": "a", "false": "b"}



def sniff_bluebirds(path: Path) -> str | None:
    """Say why ``path`` is the bluebirds labels file (or its folder), else None."""
    labels = file_in(path, LABELS_FILE)
    if labels is None or header_fields(labels) != list(LABEL_COLUMNS):
        return None
    gold = labels.parent / GOLD_FILE
    if not gold.is_file() or header_fields(gold) != list(GOLD_COLUMNS):
        return None
    where = f"{labels.name} in the folder" if path.is_dir() else "the header"
    return (
        f"{where} has worker_id, image_id, label and {GOLD_FILE} next to it has image_id, "
        "gt_label: bluebirds binary image labels"
    )



def stage_bluebirds(path: Path) -> pl.DataFrame:
    """All bluebirds labels as one polars frame with the staged columns (not yet ordered)."""
    labels_path = file_in(path, LABELS_FILE)
    if labels_path is None:
        raise InputFileError(
            "no bluebirds labels file found",
            where=str(path),
            expected=f"{LABELS_FILE} (worker_id, image_id, label), or a folder holding it, "
            f"with {GOLD_FILE} next to it",
            fix="point at the bluebirds folder or its labels.csv",
        )
    labels = read_delimited(labels_path, required=LABEL_COLUMNS, what="bluebirds labels")
    columns = labels.columns
    gold_path = labels_path.parent / GOLD_FILE
    if gold_path.is_file():
        gold = read_delimited(gold_path, required=GOLD_COLUMNS, what="bluebirds gold labels")
        gold = gold.select(
            pl.col("image_id").str.strip_chars().alias("_item"),
            mapped_label("gt_label", LABEL_CHOICES).alias("gold_choice"),
        ).unique(subset="_item", keep="first", maintain_order=True)
    else:
        gold = pl.DataFrame(schema={"_item": pl.String, "gold_choice": pl.String})
    image = pl.col("_item")
    staged = labels.with_columns(
        physical_lines(columns).alias(LINE_COLUMN),
        delimited_row_text(columns).alias(RAW_COLUMN),
        pl.col("image_id").str.strip_chars().alias("_item"),
        pl.col("worker_id").str.strip_chars().alias("reviewer_id"),
        mapped_label("label", LABEL_CHOICES).alias("choice"),
    ).join(gold, on="_item", how="left", maintain_order="left")
    row_error = errors(
        when_error(
            blank(pl.col("worker_id")),
            "worker_id is empty; expected the id of the worker who gave the label. Restore it "
            "from labels.yaml of the original release or remove the row",
        ),
        when_error(
            blank(pl.col("image_id")),
            "image_id is empty; expected the id of the labelled image. Restore it from "
            "labels.yaml of the original release or remove the row",
        ),
        when_error(
            pl.col("choice").is_null(),
            pl.concat_str(
                pl.lit("label is "),
                quoted(pl.col("label")),
                pl.lit("; expected 1 (target species) or 0 (not). Correct the label"),
            ),
        ),
    )
    return staged.with_columns(
        pl.lit(str(labels_path)).alias(SOURCE_COLUMN),
        row_error.alias(ERROR_COLUMN),
        pl.when(~blank(image))
        .then(
            pl.concat_str(
                pl.lit("Bluebirds image "),
                image,
                pl.lit(
                    ": the task is telling Indigo Buntings from Blue Grosbeaks. Does the "
                    "image show the target species?"
                ),
            )
        )
        .alias("prompt"),
        pl.lit(YES).alias("response_a"),
        pl.lit(NO).alias("response_b"),
        pl.concat_str(pl.lit("bluebirds:"), "reviewer_id", pl.lit(":"), image).alias(
            "comparison_id"
        ),
        pl.lit("bluebirds").alias("category"),
    )


def read_bluebirds(path: Path, chunk_rows: int = 100_000) -> Iterator[pa.Table]:
    """Yield the bluebirds labels as staged chunks (mapping in the module docstring).

    Raises :class:`~warehouse.errors.InputFileError` when the labels file is missing or
    unreadable; labels that cannot be mapped are yielded with ``_error`` set.
    """
    yield from iter_staged(stage_bluebirds(Path(path)), chunk_rows)
