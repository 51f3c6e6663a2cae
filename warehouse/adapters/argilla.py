"""Argilla ranking / preference exports (a ``FeedbackDataset`` in its ``datasets`` layout).

Source: a dataset exported with Argilla's ``format_as("datasets")`` / ``push_to_huggingface``
and written as JSON Lines (``to_json``): one record per line, each text field a top-level string
(e.g. ``prompt``, ``reply_1``, ``reply_2``), and the ranking question a list of responses,
``"reply-ranking": [{"user_id": ..., "value": [{"rank": 1, "value": "reply_2"},
{"rank": 2, "value": "reply_1"}], "status": "submitted"}]``. Suggestions (``*-suggestion``) are a
model's, not a reviewer's, and are not read.

One staged row per submitted response and pair of ranked replies (a ranking of k replies gives
its k(k-1)/2 pairwise preferences, equal ranks a tie; read them as one reviewer's judgments, not
as independent ones):

==============  ===============================================================================
contract column source
==============  ===============================================================================
prompt          the record's ``prompt`` field (else ``instruction``, ``question``, ``input``)
response_a      the text of the reply named first in the field order, response_b the second
choice          ``a`` when response_a has the better (lower) rank, ``b`` when worse, ``tie``
reviewer_id     the response's ``user_id``
comparison_id   ``"argilla:<external_id or record line>:<user_id>:<field a>:<field b>"``
==============  ===============================================================================

``_line`` numbers the staged rows (from 1); the raw text holds the record's line number. A
response that is not ``submitted`` (a draft or a discard), or a ranking naming a field the
record lacks, is yielded with ``_error`` set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from dissensus.warehouse.adapters._common import (
    ERROR_COLUMN,
    SOURCE_COLUMN,
    check_chunk_rows,
    first_line,
    open_bytes,
    rows_to_staged,
)
from dissensus.warehouse.contract import LINE_COLUMN, RAW_COLUMN

NAME: Final = "argilla"
DESCRIPTION: Final = (
    "Argilla ranking/preference export (datasets layout, JSON Lines): one comparison per "
    "reviewer and pair of ranked replies"
)
PROMPT_KEYS: Final = ("prompt", "instruction", "question", "input")
SUFFIXES: Final = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")
COLUMNS: Final = (LINE_COLUMN, SOURCE_COLUMN, RAW_COLUMN, ERROR_COLUMN, "prompt", "response_a",
                  "response_b", "choice", "reviewer_id", "comparison_id")


def _is_ranking(value: object) -> bool:
    """A ranking question's responses: dicts with ``user_id`` and a ``value`` list of ranks."""
    return (isinstance(value, list) and bool(value) and all(
        isinstance(r, dict) and "user_id" in r and isinstance(r.get("value"), list)
        and all(isinstance(v, dict) and "rank" in v and "value" in v for v in r["value"])
        for r in value))


def _ranking_key(record: dict[str, Any]) -> str | None:
    return next((k for k, v in record.items()
                 if not k.endswith("-suggestion") and _is_ranking(v)), None)


def sniff_argilla(path: Path) -> str | None:
    """Say why ``path`` is an Argilla ranking export, else None."""
    if not path.is_file() or not path.name.lower().endswith(SUFFIXES):
        return None
    line = first_line(path)
    try:
        record = json.loads(line) if line else None
    except ValueError:
        return None
    if isinstance(record, dict) and (key := _ranking_key(record)) is not None:
        return (f"the first record has a ranking question '{key}' (responses with user_id and "
                "ranked values): an Argilla ranking/preference export")
    return None


def map_record(record: dict[str, Any], line: int) -> list[dict[str, Any]]:
    """The staged fields of one record's pairwise preferences (``_error`` rows included)."""
    key = _ranking_key(record)
    if key is None:
        return [{ERROR_COLUMN: f"record on line {line} has no ranking responses (fields: "
                 f"{', '.join(sorted(record)) or 'none'}); nothing to compare"}]
    prompt = next((record[k] for k in PROMPT_KEYS if isinstance(record.get(k), str)), None)
    order = [k for k, v in record.items() if isinstance(v, str)]
    record_id = record.get("external_id") or f"line-{line}"
    rows: list[dict[str, Any]] = []
    for response in record[key]:
        user = str(response.get("user_id"))
        if response.get("status", "submitted") != "submitted":
            rows.append({ERROR_COLUMN: f"the response of user {user} on line {line} is "
                         f"'{response.get('status')}', not submitted: it holds no judgment"})
            continue
        ranks = {str(v["value"]): v["rank"] for v in response["value"]}
        missing = sorted(name for name in ranks if not isinstance(record.get(name), str))
        if prompt is None or missing:
            rows.append({ERROR_COLUMN: f"line {line}: "
                         + (f"the ranking names {', '.join(missing)}, which the record lacks"
                            if missing else "the record has no prompt field "
                            f"({', '.join(PROMPT_KEYS)})")})
            continue
        named = sorted(ranks, key=order.index)
        for a, b in combinations(named, 2):
            if not isinstance(ranks[a], int | float) or not isinstance(ranks[b], int | float):
                rows.append({ERROR_COLUMN: f"line {line}: ranks of {a} and {b} are not numbers"})
                continue
            choice = "a" if ranks[a] < ranks[b] else "b" if ranks[a] > ranks[b] else "tie"
            rows.append({ERROR_COLUMN: None, "prompt": prompt, "response_a": record[a],
                         "response_b": record[b], "choice": choice, "reviewer_id": user,
                         "comparison_id": f"argilla:{record_id}:{user}:{a}:{b}"})
    return rows


def read_argilla(path: Path, chunk_rows: int = 100_000) -> Iterator[pa.Table]:
    """Yield the export's pairwise preferences as staged chunks, streaming line by line."""
    check_chunk_rows(chunk_rows)
    path = Path(path)
    rows: list[dict[str, Any]] = []
    staged = 0
    for number, raw in enumerate(open_bytes(path), start=1):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        try:
            record = json.loads(text)
            mapped = (map_record(record, number) if isinstance(record, dict) else
                      [{ERROR_COLUMN: f"line {number} is not a JSON object"}])
        except ValueError as error:
            mapped = [{ERROR_COLUMN: f"line {number} is not valid JSON ({error}); fix or "
                       "remove it"}]
        for fields in mapped:
            staged += 1
            rows.append({LINE_COLUMN: staged, SOURCE_COLUMN: str(path),
                         RAW_COLUMN: f"line {number}: {text}", **fields})
        if len(rows) >= chunk_rows:
            yield rows_to_staged(rows, COLUMNS)
            rows = []
    if rows:
        yield rows_to_staged(rows, COLUMNS)
