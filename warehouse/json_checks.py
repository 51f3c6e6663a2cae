"""Checks of JSON lines that DuckDB's vectorised parse cannot make: precise syntax errors, and
keys given twice in one object.

DuckDB reads ``{"choice": "a", "choice": "b"}`` as ``choice = 'a'`` without a word, while most
JSON tools keep the last value: which one the labelling tool meant is unknowable, so such a row
is quarantined (when the values differ) instead of guessed. Both checks run in Python on the few
lines that need them, found first in SQL.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import duckdb
import pyarrow as pa

from dissensus.warehouse.contract import CONTRACT_COLUMNS, is_attribute_key


def _reject_constant(name: str) -> float:
    raise ValueError(name)


def json_error_detail(raw: str) -> str:
    """Why ``raw`` is not valid JSON, with the character position (1-based) in the line.

    The line's own end (the reader keeps it) is not part of the JSON: left in, an unterminated
    string would read as "invalid control character" instead."""
    try:
        json.loads(raw.removesuffix("\n").removesuffix("\r"), parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        # json's messages may end in "at" ("Unterminated string starting at"): the position
        # completes them, and is a character of the line, not a column of the contract.
        message = error.msg.removesuffix(" at").removesuffix(":")
        return (f"not valid JSON: {message} at character {error.colno} of the line; fix or "
                "remove this line")
    except ValueError as error:
        return (f"not valid JSON: {error} is not a JSON value (write a number, or leave the "
                "field out); fix or remove this line")
    except RecursionError:
        return "not valid JSON: nested too deeply; fix or remove this line"
    return "not valid JSON; fix or remove this line"


def _stored_key(key: str) -> bool:
    return key in CONTRACT_COLUMNS or is_attribute_key(key)


def duplicate_key_reason(raw: str) -> str | None:
    """A reason when a stored key appears twice at the top of ``raw`` with different values."""
    tops: list[list[tuple[str, object]]] = []

    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        tops.append(pairs)  # innermost objects first; the last call is the top level
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=hook)
    except (ValueError, RecursionError):
        return None
    if not tops:
        return None
    counts = Counter(key for key, _ in tops[-1])
    for key, n in counts.items():
        if n < 2 or not _stored_key(key):
            continue
        values = [value for k, value in tops[-1] if k == key]
        if any(not _same(values[0], value) for value in values[1:]):
            return (f"{key}: the key appears {n} times in this JSON object with different "
                    "values, so which one was meant is unknown; keep one and ingest again")
    return None


def _same(first: object, other: object) -> bool:
    if isinstance(first, float) and isinstance(other, float):
        return first == other or (math.isnan(first) and math.isnan(other))
    return first == other


def mark_duplicate_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Set ``fields._error`` on lines whose top-level object repeats a stored key with different
    values (the temp table ``key_templates(keys, lines)`` holds each distinct list of keys,
    repeats kept). Only lines whose key list repeats a key are parsed again, here in Python."""
    repeating = con.execute(
        "SELECT count(*) FROM key_templates WHERE len(keys) <> len(list_distinct(keys))"
    ).fetchall()[0][0]
    if not repeating:
        return
    rows = con.execute("""
        SELECT _line, _raw FROM chunk
        WHERE _error IS NULL AND left(ltrim(_raw), 1) = '{'
          AND try(json_keys(_raw)) IN (
              SELECT keys FROM key_templates WHERE len(keys) <> len(list_distinct(keys)))
    """).fetchall()
    found = [(line, reason) for line, raw in rows
             if (reason := duplicate_key_reason(raw)) is not None]
    if not found:
        return
    details = pa.table({
        "line": pa.array([line for line, _ in found], pa.int64()),
        "detail": pa.array([reason for _, reason in found], pa.string()),
    })
    con.register("duplicate_details", details)
    try:
        con.execute("""
            UPDATE fields SET _error = d.detail FROM duplicate_details d
            WHERE fields._line = d.line AND fields._error IS NULL
        """)
    finally:
        con.unregister("duplicate_details")


def json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's words: a Python ``dict`` is a JSON object, a
    ``list`` an array (for messages such as "found a JSON array")."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(
        type(value), "value")
