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
    is_attribute_key,
)
from dissensus.warehouse.errors import InputFileError

ChunkKind = Literal["json_lines", "columns"]
GZIP_MAGIC = b"\x1f\x8b"
#: The UTF-8 byte-order mark some tools (Excel, PowerShell) put before the first line: not data.
UTF8_BOM = b"\xef\xbb\xbf"
BLOCK_BYTES = 64 * 1024 * 1024


@dataclass
class StagedChunk:
    """One chunk of source rows: ``json_lines`` carry only ``_raw``; ``columns`` carry fields."""

    table: pa.Table
    kind: ChunkKind
    #: Source columns that are neither in the contract nor kept reviewer attributes: reported
    #: to the user (JSON lines find theirs in SQL, per chunk).
    unknown_columns: list[str] = field(default_factory=list)


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

    def readinto(self, buffer: memoryview) -> int:
        got = self.stream.readinto(buffer)  # type: ignore[attr-defined]
        self.sha256.update(buffer[:got])
        self.bytes_read += got
        return got


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


def _split_lines(block: bytes | memoryview, first_line: int) -> tuple[pa.Table, int]:
    """Split a block of whole lines (each ending in a newline, but for the file's last line)
    into an Arrow table of non-blank lines with numbers, and the number of lines (blank ones
    included).

    Zero-copy: the block becomes the data buffer of an Arrow string array whose offsets are the
    newline positions, so each value keeps its trailing newline (JSON ignores it). Blank lines
    are not rows and are dropped; line numbers still count them. Every line is measured with
    its newline, wherever the block ends, so a line is blank or not whatever the block size.
    Without blank lines nothing is filtered: filtering copies the block (0.18 s per 64 MB,
    most of the reader's time).
    """
    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == 10) + 1
    unterminated = len(data) > 0 and data[-1] != 10
    offsets = np.empty(len(ends) + 1 + unterminated, dtype=np.int64)
    offsets[0] = 0
    offsets[1:len(ends) + 1] = ends
    if unterminated:
        offsets[-1] = len(data)
    count = len(offsets) - 1
    lines = pa.Array.from_buffers(
        pa.large_binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(block)]
    )
    numbers = np.arange(first_line, first_line + count, dtype=np.int64)
    lengths = np.diff(offsets)
    keep = lengths > 2  # "\n" or "\r\n" alone are blank; anything longer is checked below
    for index in np.flatnonzero((lengths > 0) & (lengths <= 8)):
        keep[index] = bool(bytes(block[offsets[index]:offsets[index + 1]]).strip())
    every_line = bool(keep.all())
    if not every_line:
        lines = pc.filter(lines, pa.array(keep))
    try:
        raw = lines.cast(pa.large_string())
        raw.validate(full=True)
        errors = pa.nulls(len(raw), pa.string())
    except pa.ArrowInvalid:
        raw, errors = _decode_each(lines)
    table = pa.table(
        {
            LINE_COLUMN: pa.array(numbers if every_line else numbers[keep]),
            RAW_COLUMN: raw,
            "_error": errors,
        }
    )
    return table, count


def _last_newline(view: memoryview, start: int, end: int) -> int:
    """Position of the last newline in ``view[start:end]``, or -1; looks back from the end in
    growing windows (the last line of a block is short beside the block)."""
    window, high = 1 << 16, end
    while high > start:
        low = max(start, high - window)
        found = bytes(view[low:high]).rfind(b"\n")
        if found >= 0:
            return low + found
        high, window = low, window * 2
    return -1


def read_jsonl(stream: IO[bytes], chunk_bytes: int = BLOCK_BYTES) -> Iterator[StagedChunk]:
    """Yield chunks of whole JSON lines; blank lines are not rows and are skipped.

    Each block is read into one buffer behind the unfinished line the last block left, and the
    lines are handed on as a view of it: no copy of the block is made in Python. The buffer is
    left uninitialised (``np.empty``), so a small file touches only the pages it fills."""
    pending = b""
    next_line = 1
    first = True
    while True:
        buffer = np.empty(len(pending) + chunk_bytes, dtype=np.uint8)
        buffer[:len(pending)] = np.frombuffer(pending, dtype=np.uint8)
        view = memoryview(buffer)
        got = stream.readinto(view[len(pending):])  # type: ignore[attr-defined]
        if not got:
            break
        start, end = 0, len(pending) + got
        if first and end >= len(UTF8_BOM):  # a read of fewer bytes waits for the next one
            start = len(UTF8_BOM) if bytes(view[:len(UTF8_BOM)]) == UTF8_BOM else 0
            first = False
        # what is left of the last block holds no newline: only the new bytes are searched
        cut = _last_newline(view, max(start, len(pending)), end)
        if cut < 0:
            pending = bytes(view[start:end])
            continue
        pending = bytes(view[cut + 1:end])
        # a view: the Arrow table keeps the buffer alive until DuckDB has copied it
        table, lines = _split_lines(view[start:cut + 1], next_line)
        next_line += lines
        if table.num_rows:
            yield StagedChunk(table, "json_lines")
    if pending:
        table, _ = _split_lines(pending, next_line)
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
    attributes = ([name for name in header if is_attribute_key(name)]
                  if columns is CONTRACT_COLUMNS else [])
    return known, attributes


def unknown_columns(header: list[str], columns: tuple[str, ...] = CONTRACT_COLUMNS) -> list[str]:
    """Source columns that are neither contract columns nor kept reviewer attributes (an empty
    header cell is reported as '(unnamed)'); ``columns``: the contract (comparisons by default,
    whose reviewer_* attributes are kept)."""
    attributes = columns is CONTRACT_COLUMNS
    return [
        name or "(unnamed)" for name in header
        if name not in columns and not (attributes and is_attribute_key(name))
    ]


def _refuse_repeated_columns(header: list[str], path: str) -> None:
    """A column named twice: which value a row means is unknown, so the file is refused."""
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise InputFileError(
            "The header names " + ", ".join(f"'{name}'" for name in repeated)
            + " more than once, so which value each row means is unknown; nothing was stored.",
            where=f"{path}, line 1 (the header)",
            expected="each column named once",
            fix="rename or remove the repeated column and ingest again",
        )


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def read_csv(
    stream: IO[bytes], chunk_rows: int = 100_000, source: str = "the CSV file",
    columns: tuple[str, ...] = CONTRACT_COLUMNS,
) -> Iterator[StagedChunk]:
    """Yield chunks of CSV (or TSV) rows as string columns, with exact line numbers.

    A UTF-8 byte-order mark is not data (it would rename the first column); ``source`` names
    the file in errors; ``columns``: the contract whose columns are kept (comparisons unless
    told otherwise)."""
    data = stream.read().removeprefix(UTF8_BOM)
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
    _refuse_repeated_columns(header, source)
    _, attribute_names = _split_header(header, columns)
    unknown = unknown_columns(header, columns)
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
            yield StagedChunk(_columns_table(rows, columns), "columns", unknown)
            rows = []
    if rows:
        yield StagedChunk(_columns_table(rows, columns), "columns", unknown)


def csv_header(path: Path) -> list[str]:
    """The header row of a CSV/TSV file (for reporting unknown columns)."""
    with open_maybe_gzip(path) as stream:
        first = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace").readline()
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    return next(csv.reader([first], delimiter=delimiter), [])


def _is_nested(kind: pa.DataType) -> bool:
    return (pa.types.is_struct(kind) or pa.types.is_map(kind) or pa.types.is_union(kind)
            or ((pa.types.is_list(kind) or pa.types.is_large_list(kind))
                and _is_nested(kind.value_type)))


def _arrow_to_strings(name: str, column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.Array]:
    """A column as strings and, per row, an error for values that cannot be one (a struct)."""
    kind = column.type
    no_errors = pa.nulls(len(column), pa.string())
    if _is_nested(kind):
        # Parquet structs and maps have no string form; the value is kept (as JSON) for the
        # quarantine and the row is rejected, as a JSON object in that field would be.
        values = column.to_pylist()
        label = "struct" if pa.types.is_struct(kind) else str(kind).split("<")[0]
        return (
            pa.chunked_array([pa.array(
                [None if v is None else json.dumps(v, default=str) for v in values],
                pa.string())]),
            pa.array([None if v is None else f"{name}: expected a string or number, found a "
                      f"Parquet {label}" for v in values], pa.string()),
        )
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.chunked_array(
            [pc.binary_join(chunk.cast(pa.list_(pa.string())), ",") for chunk in column.chunks],
            pa.string(),
        ), no_errors
    if pa.types.is_timestamp(kind):
        return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S"), no_errors
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        decoded: list[str | None] = []
        bad: list[str | None] = []
        for value in column.to_pylist():
            try:
                decoded.append(None if value is None else value.decode("utf-8"))
                bad.append(None)
            except UnicodeDecodeError:
                decoded.append(value.decode("utf-8", "replace"))
                bad.append(f"{name}: the value is not valid UTF-8 text")
        return pa.chunked_array([pa.array(decoded, pa.string())]), pa.array(bad, pa.string())
    try:
        return column.cast(pa.string()), no_errors
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        values = column.to_pylist()
        return pa.chunked_array([pa.array([None if v is None else str(v) for v in values],
                                          pa.string())]), no_errors


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
    unknown = unknown_columns(names, columns)
    first_row = 1
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        table = pa.Table.from_batches([batch])
        n = table.num_rows
        columns: dict[str, pa.ChunkedArray | pa.Array] = {
            LINE_COLUMN: pa.array(range(first_row, first_row + n), pa.int64()),
            RAW_COLUMN: pa.nulls(n, pa.string()),
            "_error": pa.nulls(n, pa.string()),
        }
        row_errors: list[pa.Array] = []
        for name in wanted:
            if name in names:
                columns[name], bad = _arrow_to_strings(name, table.column(name))
                row_errors.append(bad)
            else:
                columns[name] = pa.nulls(n, pa.string())
        if row_errors:  # the first field that cannot be a string names the row's error
            columns["_error"] = pc.coalesce(*row_errors)
        if attribute_names:
            records = table.select(attribute_names).to_pylist()
            columns[REVIEWER_ATTRIBUTES_COLUMN] = pa.array(
                [json.dumps({k.removeprefix("reviewer_"): str(v) for k, v in r.items()
                             if v is not None}) for r in records], pa.string())
        else:
            columns[REVIEWER_ATTRIBUTES_COLUMN] = pa.nulls(n, pa.string())
        first_row += n
        yield StagedChunk(pa.table(columns), "columns", unknown)
