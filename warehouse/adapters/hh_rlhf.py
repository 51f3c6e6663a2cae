"""Anthropic HH-RLHF chosen/rejected dialogue pairs (Bai et al. 2022).

Source: https://github.com/anthropics/hh-rlhf (MIT), e.g. ``harmless-base/test.jsonl.gz``: gzip
JSON Lines, one ``{"chosen": str, "rejected": str}`` object per line. Both strings are whole
transcripts, ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``, that agree up to the final Assistant
turn. The input path may be one such file (gzipped or not) or a folder of ``*.jsonl[.gz]``.

One staged row per line:

==============  ===============================================================================
contract column source
==============  ===============================================================================
prompt          the shared transcript prefix up to and including the last ``"\\n\\nAssistant:"``
                marker the two transcripts have in common (leading blank lines removed), e.g.
                ``"Human: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant:"``
response_a      the rest of ``chosen`` after that marker, stripped of surrounding whitespace
response_b      the rest of ``rejected`` after that marker, stripped likewise
choice          ``a`` (the crowdworker preferred the chosen reply)
reviewer_id     null: the data names no annotator (one judgment per pair)
comparison_id   ``"hh-rlhf:<file name>:<line>"``
==============  ===============================================================================

A line that is not valid UTF-8 or JSON, is not an object with string ``chosen`` and
``rejected``, has two identical transcripts, or whose transcripts share no
``"\\n\\nAssistant:"`` marker is yielded with ``_error`` set. Blank lines are skipped (they hold
no row). In a few lines one transcript goes on for further turns after the replies differ; the
response then holds those turns too, exactly as in the source. Some chosen replies are empty
(the worker preferred no answer, 4 lines in the harmless-base test split); they stay empty
strings, which ingest quarantines as "text is empty".
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from gzip import BadGzipFile
from pathlib import Path
from typing import Final

import polars as pl
import pyarrow as pa

from dissensus.warehouse.adapters._common import (
    ERROR_COLUMN,
    SOURCE_COLUMN,
    check_chunk_rows,
    first_line,
    open_bytes,
    to_staged,
)
from dissensus.warehouse.contract import LINE_COLUMN, RAW_COLUMN
from dissensus.warehouse.errors import InputFileError
from dissensus.warehouse.json_checks import json_kind

NAME: Final = "hh-rlhf"
DESCRIPTION: Final = (
    "Anthropic HH-RLHF chosen/rejected dialogue pairs (gzip JSON Lines); prompt = the shared "
    "transcript, a = chosen reply, b = rejected reply, choice a, no reviewer ids"
)
ASSISTANT: Final = "\n\nAssistant:"
HUMAN: Final = "\n\nHuman:"
SUFFIXES: Final = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")
FIX: Final = (
    "repair or remove this line; every line must be a JSON object with string 'chosen' and "
    "'rejected' transcripts"
)

Fields = dict[str, str | None]


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(
            child
            for child in path.iterdir()
            if child.is_file() and child.name.lower().endswith(SUFFIXES)
        )
    return [path] if path.is_file() else []


def _is_pair_object(text: str) -> bool:
    try:
        record = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(record, dict)
        and isinstance(record.get("chosen"), str)
        and isinstance(record.get("rejected"), str)
        and ASSISTANT in record["chosen"]
    )


def sniff_hh_rlhf(path: Path) -> str | None:
    """Say why ``path`` is HH-RLHF chosen/rejected JSON Lines (or a folder of them), else None."""
    for candidate in _files(path)[:1]:
        line = first_line(candidate)
        if line is not None and _is_pair_object(line):
            where = f"{candidate.name} in the folder" if path.is_dir() else "the first line"
            return (
                f"{where} is a JSON object with 'chosen' and 'rejected' dialogue transcripts "
                "('\\n\\nHuman: ... \\n\\nAssistant: ...'): Anthropic HH-RLHF pairs"
            )
    return None


def split_transcripts(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two transcripts into (prompt, chosen reply, rejected reply).

    Raises ValueError with a reason when the two transcripts do not form a comparison.
    """
    if chosen == rejected:
        raise ValueError("'chosen' and 'rejected' are identical, so nothing was compared")
    shared = 0
    for left, right in zip(chosen, rejected, strict=False):
        if left != right:
            break
        shared += 1
    cut = chosen.rfind(ASSISTANT, 0, shared)
    if cut < 0:
        raise ValueError(
            "'chosen' and 'rejected' share no prefix ending in a '\\n\\nAssistant:' turn, so "
            "there is no common prompt; expected two transcripts of one dialogue that differ "
            "only from the final Assistant turn on"
        )
    end = cut + len(ASSISTANT)
    prompt = chosen[:end].lstrip("\n")
    return prompt, chosen[end:].strip(), rejected[end:].strip()


def _map_line(raw: bytes, name: str, line: int) -> tuple[str, Fields]:
    """The raw text of one line and its staged fields (``_error`` set when it cannot map)."""
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        return text, {
            ERROR_COLUMN: f"line is not valid UTF-8 ({error.reason} at byte {error.start}); {FIX}"
        }
    try:
        record = json.loads(text)
    except ValueError as error:
        return text, {ERROR_COLUMN: f"not valid JSON ({error}); {FIX}"}
    if not isinstance(record, dict):
        return text, {
            ERROR_COLUMN: f"expected a JSON object, found a JSON {json_kind(record)}; {FIX}"
        }
    wrong = [key for key in ("chosen", "rejected") if not isinstance(record.get(key), str)]
    if wrong:
        found = ", ".join(sorted(map(str, record))) or "no keys"
        return text, {
            ERROR_COLUMN: f"missing or non-string {' and '.join(wrong)} (found {found}); {FIX}"
        }
    try:
        prompt, reply_a, reply_b = split_transcripts(record["chosen"], record["rejected"])
    except ValueError as error:
        return text, {ERROR_COLUMN: f"{error}; fix or remove this line"}
    return text, {
        ERROR_COLUMN: None,
        "prompt": prompt,
        "response_a": reply_a,
        "response_b": reply_b,
        "choice": "a",
        "comparison_id": f"hh-rlhf:{name}:{line}",
    }


def _chunk(rows: list[Fields]) -> pa.Table:
    names = [
        LINE_COLUMN,
        SOURCE_COLUMN,
        RAW_COLUMN,
        ERROR_COLUMN,
        "prompt",
        "response_a",
        "response_b",
        "choice",
        "comparison_id",
    ]
    data = {name: [row.get(name) for row in rows] for name in names}
    schema = {name: (pl.Int64 if name == LINE_COLUMN else pl.String) for name in names}
    return to_staged(pl.DataFrame(data, schema=schema))


def read_hh_rlhf(path: Path, chunk_rows: int = 100_000) -> Iterator[pa.Table]:
    """Yield HH-RLHF pairs as staged chunks, streaming line by line (mapping in the docstring).

    Raises :class:`~warehouse.errors.InputFileError` when there is no file to read or a file
    is not readable as a whole (e.g. a truncated gzip stream).
    """
    check_chunk_rows(chunk_rows)
    path = Path(path)
    files = _files(path)
    if not files:
        raise InputFileError(
            "no HH-RLHF file found",
            where=str(path),
            expected='a .jsonl or .jsonl.gz file of {"chosen", "rejected"} lines, or a '
            "folder holding such files",
            fix="point at the file itself, e.g. harmless-base_test.jsonl.gz",
        )
    rows: list[Fields] = []
    for file in files:
        line = 0
        try:
            for line, raw in enumerate(open_bytes(file), start=1):
                if not raw.strip():
                    continue
                text, fields = _map_line(raw, file.name, line)
                fields.update({LINE_COLUMN: line, SOURCE_COLUMN: str(file), RAW_COLUMN: text})
                rows.append(fields)
                if len(rows) >= chunk_rows:
                    yield _chunk(rows)
                    rows = []
        except (OSError, EOFError, zlib.error, BadGzipFile) as error:
            raise InputFileError(
                f"HH-RLHF file could not be read after line {line}: {error}",
                where=str(file),
                expected="a complete gzip (or plain) JSON Lines file",
                fix="download the file again; it may be truncated",
            ) from error
    if rows:
        yield _chunk(rows)
