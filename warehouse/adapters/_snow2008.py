"""What the Snow et al. 2008 adapters share: the ``*.standardized.tsv`` label files.

Every task of the release (RTE, temporal ordering, ...) has one ``<task>.standardized.tsv``:
tab-separated without quoting, one row per worker label, with the header
``!amt_annotation_ids``, ``!amt_worker_ids``, ``orig_id``, ``response``, ``gold``. The helpers
here find and read such a file and map its binary labels to a choice between two fixed answers;
each adapter adds the prompt and the category of its task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from dissensus.warehouse.adapters._common import (
    ERROR_COLUMN,
    SOURCE_COLUMN,
    blank,
    delimited_row_text,
    file_in,
    header_fields,
    mapped_label,
    physical_lines,
    quoted,
    read_delimited,
    when_error,
)
from dissensus.warehouse.contract import LINE_COLUMN, RAW_COLUMN

LABEL_COLUMNS: Final = ("!amt_annotation_ids", "!amt_worker_ids", "orig_id", "response", "gold")
HEADER: Final = ", ".join(LABEL_COLUMNS)
ITEM_COLUMN: Final = "_item"
"""The stripped ``orig_id`` of each label (the item it labels)."""


def sniff_label_file(path: Path, file_name: str) -> Path | None:
    """The label file ``path`` is (or that its folder holds as ``file_name``), else None.

    The file's name must start like ``file_name`` (``rte``, ``temp``, ...) and its header must
    be exactly :data:`LABEL_COLUMNS`, so one task's file is not taken for another's.
    """
    labels = file_in(path, file_name)
    task = file_name.split(".", 1)[0]
    if labels is None or not labels.name.lower().startswith(task):
        return None
    if header_fields(labels, separator="\t") != list(LABEL_COLUMNS):
        return None
    return labels


def where(path: Path, labels: Path) -> str:
    """How a sniffer's reason names the label file: by name, and whether it was in a folder."""
    return f"{labels.name} in the folder" if path.is_dir() else f"{labels.name}"


def read_labels(labels_path: Path, what: str) -> pl.DataFrame:
    """The label file with every column a string, plus ``_line``, ``_raw`` and ``_item``."""
    labels = read_delimited(
        labels_path,
        required=LABEL_COLUMNS,
        what=what,
        separator="\t",
        quoting=False,
    )
    columns = labels.columns
    return labels.with_columns(
        physical_lines(columns).alias(LINE_COLUMN),
        delimited_row_text(columns, separator="\t").alias(RAW_COLUMN),
        pl.col("orig_id").str.strip_chars().alias(ITEM_COLUMN),
    )


def map_labels(labels: pl.DataFrame, choices: dict[str, str]) -> pl.DataFrame:
    """Add ``choice`` and ``gold_choice``: ``response`` and ``gold`` mapped by ``choices``."""
    return labels.with_columns(
        mapped_label("response", choices).alias("choice"),
        mapped_label("gold", choices).alias("gold_choice"),
    )


def label_errors(response_expected: str, gold_expected: str) -> tuple[pl.Expr, ...]:
    """The reasons a label row cannot be mapped: no worker, an unknown response or gold.

    ``response_expected`` says which responses are known (e.g. "1 (entailed) or 0 (not
    entailed)"), ``gold_expected`` which gold values (the same, "or empty").
    """
    return (
        when_error(
            blank(pl.col("!amt_worker_ids")),
            "!amt_worker_ids is empty; expected the MTurk worker id of the label. Restore it "
            "from the original release or remove the row",
        ),
        when_error(
            pl.col("choice").is_null(),
            pl.concat_str(
                pl.lit("response is "),
                quoted(pl.col("response")),
                pl.lit(f"; expected {response_expected}. Correct the label"),
            ),
        ),
        when_error(
            pl.col("gold_choice").is_null() & ~blank(pl.col("gold")),
            pl.concat_str(
                pl.lit("gold is "),
                quoted(pl.col("gold")),
                pl.lit(f"; expected {gold_expected}. Correct the gold label"),
            ),
        ),
    )


def label_columns(
    name: str, labels_path: Path, error: pl.Expr, response_a: str, response_b: str
) -> tuple[pl.Expr, ...]:
    """The staged columns every label row gets: its file, ``_error``, the worker, the two fixed
    answers, ``comparison_id`` ``"<name>:<!amt_annotation_ids>:<orig_id>"`` and the assignment
    as ``batch``."""
    assignment = pl.col("!amt_annotation_ids").str.strip_chars()
    return (
        pl.lit(str(labels_path)).alias(SOURCE_COLUMN),
        error.alias(ERROR_COLUMN),
        pl.col("!amt_worker_ids").str.strip_chars().alias("reviewer_id"),
        pl.lit(response_a).alias("response_a"),
        pl.lit(response_b).alias("response_b"),
        pl.concat_str(pl.lit(f"{name}:"), assignment, pl.lit(":"), ITEM_COLUMN).alias(
            "comparison_id"
        ),
        assignment.alias("batch"),
    )
