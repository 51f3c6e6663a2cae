"""Shared pieces of the adapters: the staged-chunk layout and small polars helpers.

Every adapter yields *staged chunks*: Arrow tables with ``_line`` (int64, 1-based line of the
source row in its file), ``_source`` (the file the row came from), ``_raw`` (the source row as
text), ``_error`` (null when the row could be mapped, else a reason a person can act on), every
column of :data:`warehouse.contract.CONTRACT_COLUMNS` as a string, and ``_reviewer_attributes``
(a JSON object string or null). A row that cannot be mapped is still yielded, with ``_error`` set.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

import polars as pl
import pyarrow as pa

from dissensus.warehouse.contract import (
    CONTRACT_COLUMNS,
    LINE_COLUMN,
    RAW_COLUMN,
    REVIEWER_ATTRIBUTES_COLUMN,
)
from dissensus.warehouse.errors import InputFileError

SOURCE_COLUMN: Final = "_source"
ERROR_COLUMN: Final = "_error"

#: String columns of a staged chunk, in order, after ``_line``.
STAGED_STRING_COLUMNS: Final = (
    SOURCE_COLUMN,
    RAW_COLUMN,
    ERROR_COLUMN,
    *CONTRACT_COLUMNS,
    REVIEWER_ATTRIBUTES_COLUMN,
)
STAGED_COLUMNS: Final = (LINE_COLUMN, *STAGED_STRING_COLUMNS)
STAGED_SCHEMA: Final = pa.schema(
    [pa.field(LINE_COLUMN, pa.int64())]
    + [pa.field(name, pa.string()) for name in STAGED_STRING_COLUMNS]
)

GZIP_MAGIC: Final = b"\x1f\x8b"


def check_chunk_rows(chunk_rows: int) -> None:
    """Reject a chunk size that would loop forever or yield nothing."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")


def finish(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the staged columns the adapter left out (as nulls) and put them in order."""
    missing = [
        pl.lit(None, dtype=pl.String).alias(name)
        for name in STAGED_STRING_COLUMNS
        if name not in frame.columns
    ]
    frame = frame.with_columns(missing) if missing else frame
    return frame.select(
        pl.col(LINE_COLUMN).cast(pl.Int64),
        *(pl.col(name).cast(pl.String) for name in STAGED_STRING_COLUMNS),
    )


def to_staged(frame: pl.DataFrame) -> pa.Table:
    """The finished frame as an Arrow table with exactly :data:`STAGED_SCHEMA`."""
    return finish(frame).to_arrow().cast(STAGED_SCHEMA)


def rows_to_staged(rows: list[dict[str, Any]], columns: Sequence[str]) -> pa.Table:
    """Row dicts (``columns`` as keys, missing keys null) as a staged Arrow table: the line
    number an integer, every other column a string."""
    data = {name: [row.get(name) for row in rows] for name in columns}
    schema = {name: (pl.Int64 if name == LINE_COLUMN else pl.String) for name in columns}
    return to_staged(pl.DataFrame(data, schema=schema))


def iter_staged(frame: pl.DataFrame, chunk_rows: int) -> Iterator[pa.Table]:
    """Yield the frame as staged chunks of at most ``chunk_rows`` rows."""
    check_chunk_rows(chunk_rows)
    staged = finish(frame)
    for start in range(0, staged.height, chunk_rows):
        yield staged.slice(start, chunk_rows).to_arrow().cast(STAGED_SCHEMA)


def _open(path: Path) -> IO[bytes]:
    """Open a file for binary reading, gunzipping it when it starts with the gzip magic number."""
    with path.open("rb") as probe:
        gzipped = probe.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def open_bytes(path: Path) -> Iterator[bytes]:
    """The file's lines as bytes, gunzipped when the file starts with the gzip magic number."""
    with _open(path) as handle:
        yield from handle


def first_line(path: Path, limit: int = 1 << 20) -> str | None:
    """The first non-blank line (at most ``limit`` bytes of it) of a possibly gzipped text file.

    None when the file cannot be read or decoded, or has no non-blank line among its first 100.
    """
    try:
        with _open(path) as handle:
            for _ in range(100):
                raw = handle.readline(limit)
                if not raw:
                    return None
                text = raw.decode("utf-8-sig").strip("\r\n")
                if text.strip():
                    return text
    except (OSError, EOFError, UnicodeDecodeError, zlib.error):
        return None
    return None


def header_fields(path: Path, separator: str = ",") -> list[str] | None:
    """The header of a delimited file as stripped field names, or None if unreadable."""
    line = first_line(path)
    if line is None:
        return None
    return [field.strip().strip('"') for field in line.split(separator)]


def read_delimited(
    path: Path,
    *,
    required: Sequence[str],
    what: str,
    separator: str = ",",
    quoting: bool = True,
) -> pl.DataFrame:
    """Read a delimited file with every column as a string; raise a clear error if it is bad."""
    if not path.is_file():
        raise InputFileError(
            f"{what} is missing",
            where=str(path),
            expected=f"the file {path.name}",
            fix=f"put {path.name} next to the other files of the data set",
        )
    try:
        frame = pl.read_csv(
            path,
            separator=separator,
            infer_schema=False,
            quote_char='"' if quoting else None,
        )
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as error:
        raise InputFileError(
            f"{what} could not be read: {error}",
            where=str(path),
            expected="a well-formed delimited text file, UTF-8, one record per line",
            fix="restore the file from the original release",
        ) from error
    absent = [name for name in required if name not in frame.columns]
    if absent:
        raise InputFileError(
            f"{what} lacks the column(s) {', '.join(absent)}",
            where=str(path),
            expected=f"a header with {', '.join(required)}",
            fix="restore the file from the original release (the header may have been edited)",
        )
    return frame


def delimited_row_text(columns: Sequence[str], separator: str = ",") -> pl.Expr:
    """Re-serialise each row of the given columns as one delimited line (RFC 4180 quoting)."""
    fields = []
    for name in columns:
        value = pl.col(name).fill_null("")
        needs_quotes = value.str.contains(r'["\r\n]') | value.str.contains(separator, literal=True)
        quoted = pl.concat_str(
            pl.lit('"'), value.str.replace_all('"', '""', literal=True), pl.lit('"')
        )
        fields.append(pl.when(needs_quotes).then(quoted).otherwise(value))
    return pl.concat_str(fields, separator=separator)


def physical_lines(columns: Sequence[str], header_lines: int = 1) -> pl.Expr:
    """1-based line where each record starts, counting newlines inside quoted fields."""
    newlines = pl.sum_horizontal(
        [pl.col(name).str.count_matches("\n", literal=True).fill_null(0) for name in columns]
    ).cast(pl.Int64)
    span = newlines + 1
    return (span.cum_sum() - span + header_lines + 1).cast(pl.Int64)


def errors(*messages: pl.Expr) -> pl.Expr:
    """Join the non-null messages with "; " into one ``_error`` value (null when none)."""
    joined = pl.concat_str(list(messages), separator="; ", ignore_nulls=True)
    return pl.when(joined == "").then(None).otherwise(joined)


def when_error(condition: pl.Expr, message: pl.Expr | str) -> pl.Expr:
    """``message`` where ``condition`` holds, else null (a null condition counts as false)."""
    text = pl.lit(message) if isinstance(message, str) else message
    return pl.when(condition.fill_null(False)).then(text).otherwise(None)


def blank(expr: pl.Expr) -> pl.Expr:
    """True where the value is null or only whitespace."""
    return expr.is_null() | (expr.str.strip_chars() == "")


def quoted(expr: pl.Expr) -> pl.Expr:
    """The value in single quotes for an error message, or ``(empty)`` when null."""
    return pl.concat_str(pl.lit("'"), expr, pl.lit("'")).fill_null("(empty)")


def file_in(path: Path, name: str) -> Path | None:
    """``path`` itself when it is a file, ``path / name`` when it is a folder; None if absent."""
    if path.is_dir():
        path = path / name
    return path if path.is_file() else None


def mapped_label(column: str, mapping: dict[str, str]) -> pl.Expr:
    """A label column mapped to a contract choice (trimmed, case-folded); null when unknown."""
    return (
        pl.col(column)
        .str.strip_chars()
        .str.to_lowercase()
        .replace_strict(mapping, default=None, return_dtype=pl.String)
    )
