"""Snow et al. 2008 "Cheap and Fast -- But is it Good?": MTurk labels for RTE-1 entailment.

Source: the original release http://ai.stanford.edu/~rion/annotations/ (as assembled by Brendan
O'Connor, 2019; licence unstated, cite the EMNLP 2008 paper). ``rte.standardized.tsv`` holds one
row per worker label (``!amt_annotation_ids``, ``!amt_worker_ids``, ``orig_id``, ``response``
0/1, ``gold`` 0/1); ``rte_texts.tsv`` (``id``, ``value``, ``task``, ``text``, ``hypothesis``) holds
the sentence pairs and is joined in on ``orig_id = id``. Both files are tab-separated without
quoting. The input path may be the folder or ``rte.standardized.tsv``.

A binary label is mapped to a choice between two fixed answers, one staged row per label:

===============  ==============================================================================
contract column  source
===============  ==============================================================================
prompt           "Text: <text>\\nHypothesis: <hypothesis>\\nDoes the text entail the
                 hypothesis?"
response_a       "Yes, the text entails the hypothesis."  (label 1)
response_b       "No, the text does not entail the hypothesis."  (label 0)
choice           ``response``: 1 -> a, 0 -> b
gold_choice      ``gold`` (the expert RTE-1 label): 1 -> a, 0 -> b
reviewer_id      ``!amt_worker_ids``
comparison_id    ``"snow2008-rte:<!amt_annotation_ids>:<orig_id>"``
batch            ``!amt_annotation_ids`` (the MTurk assignment: 20 items)
category         "RTE: <sub-task>" from ``task`` (e.g. "RTE: question answering")
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

from dissensus.warehouse.adapters._common import (
    errors,
    file_in,
    iter_staged,
    quoted,
    read_delimited,
    when_error,
)
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

NAME: Final = "snow2008-rte"
DESCRIPTION: Final = (
    "Snow et al. 2008 MTurk RTE labels (rte.standardized.tsv + rte_texts.tsv): each binary "
    "entailment label as a choice between 'Yes, entails' (a) and 'No' (b), with expert gold"
)
LABELS_FILE: Final = "rte.standardized.tsv"
TEXTS_FILE: Final = "rte_texts.tsv"
TEXT_COLUMNS: Final = ("id", "task", "text", "hypothesis")
YES: Final = "Yes, the text entails the hypothesis."
NO: Final = "No, the text does not entail the hypothesis."
QUESTION: Final = "Does the text entail the hypothesis?"
LABEL_CHOICES: Final = {"1": "a", "0": "b"}
TASKS: Final = {
    "CD": "comparable documents",
    "IE": "information extraction",
    "IR": "information retrieval",
    "MT": "machine translation",
    "PP": "paraphrase acquisition",
    "QA": "question answering",
    "RC": "reading comprehension",
}



def sniff_snow2008_rte(path: Path) -> str | None:
    """Say why ``path`` is the Snow et al. RTE label file (or its folder), else None."""
    labels = sniff_label_file(path, LABELS_FILE)
    if labels is None:
        return None
    return (
        f"{where(path, labels)} has the header {HEADER}: Snow et al. 2008 RTE labels (texts "
        f"from {TEXTS_FILE} next to it)"
    )


def stage_snow2008_rte(path: Path) -> pl.DataFrame:
    """All RTE labels as one polars frame with the staged columns (not yet ordered)."""
    labels_path = file_in(path, LABELS_FILE)
    if labels_path is None:
        raise InputFileError(
            "no Snow et al. RTE label file found",
            where=str(path),
            expected=f"{LABELS_FILE}, or a folder holding it, with {TEXTS_FILE} next to it",
            fix="point at the snow2008_mturk folder or its rte.standardized.tsv",
        )
    labels = read_labels(labels_path, "Snow et al. RTE labels")
    texts = read_delimited(
        labels_path.parent / TEXTS_FILE,
        required=TEXT_COLUMNS,
        separator="\t",
        quoting=False,
        what=f"{TEXTS_FILE} (needed for the RTE text and hypothesis of each label)",
    )
    texts = texts.select(
        pl.col("id").str.strip_chars().alias(ITEM_COLUMN),
        pl.concat_str(
            pl.lit("Text: "),
            pl.col("text").str.strip_chars(),
            pl.lit("\nHypothesis: "),
            pl.col("hypothesis").str.strip_chars(),
            pl.lit("\n" + QUESTION),
        ).alias("prompt"),
        pl.concat_str(
            pl.lit("RTE: "),
            pl.col("task").str.strip_chars().replace(TASKS),
        ).alias("category"),
    ).unique(subset=ITEM_COLUMN, keep="first", maintain_order=True)
    staged = map_labels(labels, LABEL_CHOICES).join(
        texts, on=ITEM_COLUMN, how="left", maintain_order="left"
    )
    row_error = errors(
        *label_errors(
            "1 (entailed) or 0 (not entailed)", "1 (entailed), 0 (not entailed) or empty"
        ),
        when_error(
            pl.col("prompt").is_null(),
            pl.concat_str(
                pl.lit("orig_id "),
                quoted(pl.col("orig_id")),
                pl.lit(
                    f" is not an id in {TEXTS_FILE}; expected every label to name an RTE "
                    f"item listed there. Use the {TEXTS_FILE} of the same release"
                ),
            ),
        ),
    )
    return staged.with_columns(*label_columns(NAME, labels_path, row_error, YES, NO))


def read_snow2008_rte(path: Path, chunk_rows: int = 100_000) -> Iterator[pa.Table]:
    """Yield the Snow et al. RTE labels as staged chunks (mapping in the module docstring).

    Raises :class:`~warehouse.errors.InputFileError` when a file is missing or unreadable;
    labels that cannot be mapped are yielded with ``_error`` set.
    """
    yield from iter_staged(stage_snow2008_rte(Path(path)), chunk_rows)
