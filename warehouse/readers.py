"""Readers for the canonical row format: JSONL, CSV and Parquet, each optionally gzip-compressed.

A reader streams its file in chunks of Arrow tables (see :mod:`warehouse.contract`) and never
drops a row: a row it cannot even split or decode is yielded with ``_error`` set, so that ingest
quarantines it with its line number. JSON lines are *not* parsed here: DuckDB extracts the fields
from ``_raw`` in one vectorised pass (:mod:`warehouse.staging`), which is what keeps ingest close to
DuckDB's own ``read_json`` speed.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dissensus.warehouse.contract import (
    CONTRACT_COLUMNS,
    LINE_COLUMN,
    RAW_COLUMN,
    REVIEWER_ATTRIBUTES_COLUMN,
)
from dissensus.warehouse.errors import InputFileError

ChunkKind = Literal["json_lines", "columns"]
GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 64 * 1024 * 1024


@dataclass
class StagedChunk:
    """One chunk of source rows: ``json_lines`` carry only ``_raw``; ``columns`` carry fields."""

    table: pa.Table
    kind: ChunkKind


@dataclass
class HashingReader:
    """Wraps a binary stream and hashes every byte read, so the file is read only once."""

    stream: IO[bytes]
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    bytes_read: int = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha256.update(data)
        self.bytes_read += len(data)
        return data


def open_maybe_gzip(path: Path) -> IO[bytes]:
    """Open ``path`` for binary reading, decompressing gzip by its magic bytes."""
    if not path.exists():
        raise InputFileError(
            f"No such file: {path}",
            where=str(path),
            expected="an existing JSONL, CSV or Parquet file (optionally .gz)",
            fix="check the path; `dissensus simulate` writes a demo file to try",
        )
    if path.is_dir():
        raise InputFileError(
            f"{path} is a folder, not a file.",
            where=str(path),
            expected="a file, or a folder that an adapter understands (e.g. --format ukpconvarg1)",
            fix="name the file inside it, or pass --format for a dataset folder",
        )
    handle = path.open("rb")
    magic = handle.read(2)
    handle.seek(0)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def _decode_each(lines: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Slow path for a block with invalid UTF-8: decode line by line and mark the bad ones."""
    raw_values: list[str] = []
    error_values: list[str | None] = []
    for value in lines.to_pylist():
        try:
            raw_values.append(value.decode("utf-8"))
            error_values.append(None)
        except UnicodeDecodeError as error:
            raw_values.append(value.decode("utf-8", errors="replace"))
            error_values.append(
                f"the line is not valid UTF-8 (byte {error.start}); re-save the file as UTF-8"
            )
    return pa.array(raw_values, pa.string()), pa.array(error_values, pa.string())


def _split_lines(block: bytes, first_line: int) -> pa.Table:
    """Split a block of whole lines into an Arrow table of non-blank lines with numbers.

    Zero-copy: the block becomes the data buffer of an Arrow string array whose offsets are the
    newline positions, so each value keeps its trailing newline (JSON ignores it). Blank lines
    are not rows and are dropped; line numbers still count them.
    """
    data = np.frombuffer(block, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    offsets = np.empty(len(newlines) + 2, dtype=np.int64)
    offsets[0] = 0
    offsets[1:-1] = newlines + 1
    offsets[-1] = len(block)
    count = len(offsets) - 1
    lines = pa.Array.from_buffers(
        pa.large_binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(block)]
    )
    numbers = np.arange(first_line, first_line + count, dtype=np.int64)
    lengths = np.diff(offsets)
    keep = lengths > 2  # "\n" or "\r\n" alone are blank; anything longer is checked below
    for index in np.flatnonzero((lengths > 0) & (lengths <= 8)):
        keep[index] = bool(block[offsets[index]:offsets[index + 1]].strip())
    keep_array = pa.array(keep)
    lines = pc.filter(lines, keep_array)
    try:
        raw = lines.cast(pa.large_string())
        raw.validate(full=True)
        errors = pa.nulls(len(raw), pa.string())
    except pa.ArrowInvalid:
        raw, errors = _decode_each(lines)
    return pa.table(
        {
            LINE_COLUMN: pa.array(numbers[keep]),
            RAW_COLUMN: raw,
            "_error": errors,
        }
    )


def read_jsonl(stream: IO[bytes], chunk_bytes: int = BLOCK_BYTES) -> Iterator[StagedChunk]:
    """Yield chunks of whole JSON lines; blank lines are not rows and are skipped."""
    pending = b""
    next_line = 1
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            break
        block = pending + block
        cut = block.rfind(b"\n")
        if cut < 0:
            pending = block
            continue
        whole, pending = block[:cut], block[cut + 1 :]
        table = _split_lines(whole, next_line)
        next_line += whole.count(b"\n") + 1
        if table.num_rows:
            yield StagedChunk(table, "json_lines")
    if pending:
        table = _split_lines(pending, next_line)
        if table.num_rows:
            yield StagedChunk(table, "json_lines")


def _columns_table(
    rows: list[dict[str, str | None]], columns: tuple[str, ...] = CONTRACT_COLUMNS
) -> pa.Table:
    names = [LINE_COLUMN, RAW_COLUMN, "_error", *columns, REVIEWER_ATTRIBUTES_COLUMN]
    types = {LINE_COLUMN: pa.int64()}
    return pa.table(
        {name: pa.array([row.get(name) for row in rows], types.get(name, pa.string()))
         for name in names}
    )


def _split_header(
    header: list[str], columns: tuple[str, ...] = CONTRACT_COLUMNS
) -> tuple[list[str], list[str]]:
    """Contract columns and reviewer attributes of a header; the rest is reported, not kept.
    Reviewer attributes exist only in the comparison contract (``columns`` left as default)."""
    known = [name for name in header if name in columns]
    attributes = [
        name for name in header if name.startswith("reviewer_") and name not in columns
    ] if columns is CONTRACT_COLUMNS else []
    return known, attributes


def unknown_columns(header: list[str]) -> list[str]:
    """Source columns that are neither contract columns nor reviewer attributes."""
    return [
        name for name in header
        if name not in CONTRACT_COLUMNS and not name.startswith("reviewer_") and name
    ]


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def read_csv(
    stream: IO[bytes], chunk_rows: int = 100_000, columns: tuple[str, ...] = CONTRACT_COLUMNS
) -> Iterator[StagedChunk]:
    """Yield chunks of CSV (or TSV) rows as string columns, with exact line numbers.
    ``columns``: the contract whose columns are kept (comparisons unless told otherwise)."""
    data = stream.read()
    try:
        text = data.decode("utf-8")
        bad_encoding = False
    except UnicodeDecodeError:
        # Undecodable bytes become lone surrogates; the rows holding them are quarantined.
        text = data.decode("utf-8", errors="surrogateescape")
        bad_encoding = True
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    _, attribute_names = _split_header(header, columns)
    width = len(header)
    rows: list[dict[str, str | None]] = []
    previous_end = reader.line_num
    for fields in reader:
        line = previous_end + 1
        previous_end = reader.line_num
        if not any(value.strip() for value in fields):
            continue
        raw = delimiter.join(fields)
        if bad_encoding and _has_surrogates(raw):
            rows.append({
                LINE_COLUMN: line,  # type: ignore[dict-item]
                RAW_COLUMN: raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                "_error": "the line is not valid UTF-8; re-save the file as UTF-8",
            })
        elif len(fields) != width:
            rows.append({
                LINE_COLUMN: line, RAW_COLUMN: raw,  # type: ignore[dict-item]
                "_error": f"expected {width} fields as in the header, found {len(fields)}; "
                "check for an unquoted delimiter or a missing field on this line",
            })
        else:
            row: dict[str, str | None] = {LINE_COLUMN: line, RAW_COLUMN: raw}  # type: ignore[dict-item]
            attributes: dict[str, str] = {}
            for name, value in zip(header, fields, strict=True):
                if name in columns:
                    row[name] = value if value != "" else None
                elif name in attribute_names and value != "":
                    attributes[name.removeprefix("reviewer_")] = value
            if attributes:
                row[REVIEWER_ATTRIBUTES_COLUMN] = json.dumps(attributes)
            rows.append(row)
        if len(rows) >= chunk_rows:
            yield StagedChunk(_columns_table(rows, columns), "columns")
            rows = []
    if rows:
        yield StagedChunk(_columns_table(rows, columns), "columns")


def csv_header(path: Path) -> list[str]:
    """The header row of a CSV/TSV file (for reporting unknown columns)."""
    with open_maybe_gzip(path) as stream:
        first = io.TextIOWrapper(stream, encoding="utf-8", errors="replace").readline()
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    return next(csv.reader([first], delimiter=delimiter), [])


def _arrow_to_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return pa.chunked_array(
            [pc.binary_join(chunk.cast(pa.list_(pa.string())), ",") for chunk in column.chunks],
            pa.string(),
        )
    if pa.types.is_timestamp(column.type):
        return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S")
    return column.cast(pa.string())


def read_parquet(
    path: Path, chunk_rows: int = 100_000, columns: tuple[str, ...] = CONTRACT_COLUMNS
) -> Iterator[StagedChunk]:
    """Yield Parquet record batches as string columns; ``_line`` is the 1-based row number.
    ``columns``: the contract whose columns are kept (comparisons unless told otherwise)."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputFileError(
            f"{path} is not a readable Parquet file: {error}",
            where=str(path),
            expected="a Parquet file",
            fix="check the file, or pass --format jsonl/csv if it is text",
        ) from error
    names = parquet.schema_arrow.names
    wanted = columns
    _, attribute_names = _split_header(names, columns)
    first_row = 1
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        table = pa.Table.from_batches([batch])
        n = table.num_rows
        columns: dict[str, pa.ChunkedArray | pa.Array] = {
            LINE_COLUMN: pa.array(range(first_row, first_row + n), pa.int64()),
            RAW_COLUMN: pa.nulls(n, pa.string()),
            "_error": pa.nulls(n, pa.string()),
        }
        for name in wanted:
            columns[name] = (
                _arrow_to_strings(table.column(name)) if name in names else pa.nulls(n, pa.string())
            )
        if attribute_names:
            records = table.select(attribute_names).to_pylist()
            columns[REVIEWER_ATTRIBUTES_COLUMN] = pa.array(
                [json.dumps({k.removeprefix("reviewer_"): str(v) for k, v in r.items()
                             if v is not None}) for r in records], pa.string())
        else:
            columns[REVIEWER_ATTRIBUTES_COLUMN] = pa.nulls(n, pa.string())
        first_row += n
        yield StagedChunk(pa.table(columns), "columns")
