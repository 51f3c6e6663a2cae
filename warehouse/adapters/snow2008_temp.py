"""Snow et al. 2008 "Cheap and Fast -- But is it Good?": MTurk labels for temporal ordering.

Source: the original release http://ai.stanford.edu/~rion/annotations/ (as assembled by Brendan
O'Connor, 2019; licence unstated, cite the EMNLP 2008 paper). ``temp.standardized.tsv`` holds one
row per worker label (``!amt_annotation_ids``, ``!amt_worker_ids``, ``orig_id``, ``response``
1/2, ``gold`` 1/2), tab-separated without quoting. The workers were asked whether one event in a
TempEval sentence happened before or after another. The event texts cannot be joined in (the
release's ``temp.tsv`` has no id column), so the prompt names the item by its ``orig_id``.

The input path may be ``temp.standardized.tsv`` or a folder holding it. The release's folder also
holds ``rte.standardized.tsv``, and the RTE adapter is tried first, so ``--format auto`` on that
folder means RTE: reach the temporal labels by naming the file (``--format auto`` recognises it)
or with ``--format snow2008-temp``.

A binary label is mapped to a choice between two fixed answers, one staged row per label:

===============  ==============================================================================
contract column  source
===============  ==============================================================================
prompt           "Event pair <orig_id> (TempEval): did the first event happen before or after
                 the second?"
response_a       "The first event happened before the second."  (label 1)
response_b       "The first event happened after the second."  (label 2)
choice           ``response``: 1 -> a, 2 -> b
gold_choice      ``gold`` (the expert TempEval label): 1 -> a, 2 -> b; empty -> null
reviewer_id      ``!amt_worker_ids``
comparison_id    ``"snow2008-temp:<!amt_annotation_ids>:<orig_id>"``
batch            ``!amt_annotation_ids`` (the MTurk assignment, mostly of 10 items)
category         "TempEval: event order"
shown_first      null: the answers were not shown in a recorded order
===============  ==============================================================================

``_raw`` is the label row as it stands in the file; ``_line`` is its line (the header is line 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

import polars as pl
import pyarrow as pa

from dissensus.warehouse.adapters._common import blank, errors, file_in, iter_staged, when_error
from dissensus.warehouse.adapters._snow2008 import (
    HEADER,
    ITEM_COLUMN,
    label_columns,
    label_errors,
    map_labels,
    read_labels,
    sniff_label_file,
    where,
)
from dissensus.warehouse.errors import InputFileError

NAME: Final = "snow2008-temp"
DESCRIPTION: Final = (
    "Snow et al. 2008 MTurk temporal ordering labels (temp.standardized.tsv): each before/after "
    "label on a TempEval event pair as a choice between 'before' (a) and 'after' (b), with "
    "expert gold; the prompt names the event pair (the release has no texts to join)"
)
LABELS_FILE: Final = "temp.standardized.tsv"
BEFORE: Final = "The first event happened before the second."
AFTER: Final = "The first event happened after the second."
QUESTION: Final = "did the first event happen before or after the second?"
CATEGORY: Final = "TempEval: event order"
LABEL_CHOICES: Final = {"1": "a", "2": "b"}


def sniff_snow2008_temp(path: Path) -> str | None:
    """Say why ``path`` is the Snow et al. temporal label file (or its folder), else None."""
    labels = sniff_label_file(path, LABELS_FILE)
    if labels is None:
        return None
    return (
        f"{where(path, labels)} has the header {HEADER}: Snow et al. 2008 temporal ordering "
        "labels (TempEval event pairs, named by orig_id)"
    )


def stage_snow2008_temp(path: Path) -> pl.DataFrame:
    """All temporal labels as one polars frame with the staged columns (not yet ordered)."""
    labels_path = file_in(path, LABELS_FILE)
    if labels_path is None:
        raise InputFileError(
            "no Snow et al. temporal ordering label file found",
            where=str(path),
            expected=f"{LABELS_FILE}, or a folder holding it",
            fix="point at the snow2008_mturk folder's temp.standardized.tsv",
        )
    labels = read_labels(labels_path, "Snow et al. temporal ordering labels")
    staged = map_labels(labels, LABEL_CHOICES)
    row_error = errors(
        *label_errors("1 (before) or 2 (after)", "1 (before), 2 (after) or empty"),
        when_error(
            blank(pl.col("orig_id")),
            "orig_id is empty; expected the TempEval event pair the label is about (e.g. "
            "42_0). Restore it from the original release or remove the row",
        ),
    )
    item = pl.col(ITEM_COLUMN)
    return staged.with_columns(
        *label_columns(NAME, labels_path, row_error, BEFORE, AFTER),
        pl.when(~blank(item))
        .then(pl.concat_str(pl.lit("Event pair "), item, pl.lit(f" (TempEval): {QUESTION}")))
        .alias("prompt"),
        pl.lit(CATEGORY).alias("category"),
    )


def read_snow2008_temp(path: Path, chunk_rows: int = 100_000) -> Iterator[pa.Table]:
    """Yield the Snow et al. temporal labels as staged chunks (mapping in the module docstring).

    Raises :class:`~warehouse.errors.InputFileError` when the file is missing or unreadable;
    labels that cannot be mapped are yielded with ``_error`` set.
    """
    yield from iter_staged(stage_snow2008_temp(Path(path)), chunk_rows)
