"""Label Studio JSON exports of a pairwise-comparison project.

Source: a project's *Export -> JSON* file: a JSON array of tasks, each
``{"id", "data": {...}, "annotations": [...]}``. The pairwise template puts two texts side by
side (``<Pairwise name="pw" toName="text1,text2"/>``) and each annotation's ``result`` holds
``{"type": "pairwise", "value": {"selected": "left" | "right"}}``: left is the first ``toName``.

One staged row per annotation (tasks in file order, then their annotations):

==============  ===============================================================================
contract column source
==============  ===============================================================================
prompt          ``data`` field ``prompt`` (else ``question``, ``instruction``, ``input``,
                ``context`` or ``text``)
response_a      the left text: ``data`` field named first in the result's ``to_name`` when it is
                there, else the first of the pairs ``text1/text2``, ``answer1/answer2``,
                ``left/right``, ``response_a/response_b``, ``response1/response2`` in ``data``
response_b      the right text, likewise
choice          ``a`` for ``selected: left``, ``b`` for ``right``
shown_first     ``a``: the left text is displayed first
reviewer_id     ``completed_by`` (a user id, or the email / id of a user object)
created_at      the annotation's ``created_at``; ``seconds_spent``: its ``lead_time``
category        ``data.category`` when present
comparison_id   ``"label-studio:<project>:<task id>:<annotation id>"``
==============  ===============================================================================

``_line`` is the annotation's position in the export (from 1). An annotation that was skipped
(``was_cancelled``), holds no pairwise result, or whose task lacks the texts is yielded with
``_error`` set, so it is quarantined with the reason rather than dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from dissensus.warehouse.adapters._common import (
    ERROR_COLUMN,
    SOURCE_COLUMN,
    check_chunk_rows,
    rows_to_staged,
)
from dissensus.warehouse.contract import LINE_COLUMN, RAW_COLUMN
from dissensus.warehouse.errors import InputFileError
from dissensus.warehouse.json_checks import json_kind

NAME: Final = "label-studio"
DESCRIPTION: Final = (
    "Label Studio JSON export of a pairwise project (a JSON array of tasks with annotations); "
    "one comparison per annotation, a = left text, b = right text"
)
PROMPT_KEYS: Final = ("prompt", "question", "instruction", "input", "context", "text")
PAIR_KEYS: Final = (("text1", "text2"), ("answer1", "answer2"), ("left", "right"),
                    ("response_a", "response_b"), ("response1", "response2"))
COLUMNS: Final = (LINE_COLUMN, SOURCE_COLUMN, RAW_COLUMN, ERROR_COLUMN, "prompt", "response_a",
                  "response_b", "choice", "shown_first", "reviewer_id", "created_at",
                  "seconds_spent", "category", "comparison_id")
SNIFF_BYTES: Final = 1 << 16
ID_PARTS: Final = {"project": 2, "task": 3, "annotation": 4}
"""Position of each part in a comparison id ``label-studio:<project>:<task>:<annotation>``."""


def comparison_id(project: object, task: object, annotation: object) -> str:
    """The comparison id of one annotation. Exports and the webhook
    (:mod:`dissensus.analytics.api.label_studio`) build it alike, so either can follow the other
    without storing a judgment twice."""
    return f"{NAME}:{project}:{task}:{annotation}"


def id_part_sql(column: str, part: str) -> str:
    """SQL for one part (a key of :data:`ID_PARTS`) of the Label Studio comparison id in
    ``column``; NULL for other ids."""
    return (f"CASE WHEN starts_with({column}, '{NAME}:') "
            f"THEN split_part({column}, ':', {ID_PARTS[part]}) END")


def sniff_label_studio(path: Path) -> str | None:
    """Say why ``path`` is a Label Studio JSON export with pairwise results, else None."""
    if not path.is_file() or not path.name.lower().endswith(".json"):
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES).decode("utf-8", errors="ignore")
    except OSError:
        return None
    if (head.lstrip().startswith("[") and '"annotations"' in head and '"data"' in head
            and '"pairwise"' in head):
        return ("the file is a JSON array of tasks with 'data' and 'annotations' holding "
                "'pairwise' results: a Label Studio export of a pairwise project")
    return None


def _texts(data: dict[str, Any], to_name: object) -> tuple[str, str] | None:
    names = [n.strip() for n in to_name.split(",")] if isinstance(to_name, str) else []
    if len(names) == 2 and all(isinstance(data.get(n), str) for n in names):
        return names[0], names[1]
    for left, right in PAIR_KEYS:
        if isinstance(data.get(left), str) and isinstance(data.get(right), str):
            return left, right
    return None


def _reviewer(completed_by: object) -> str | None:
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    return None if completed_by is None else str(completed_by)


def map_annotation(task: dict[str, Any], annotation: dict[str, Any]) -> dict[str, Any]:
    """The staged fields of one annotation (``_error`` set when it holds no comparison)."""
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    where = f"task {task.get('id')}, annotation {annotation.get('id')}"
    if annotation.get("was_cancelled"):
        return {ERROR_COLUMN: f"{where} was skipped in Label Studio (was_cancelled): it holds "
                "no judgment; nothing to store"}
    results = annotation.get("result") if isinstance(annotation.get("result"), list) else []
    pairwise = [r for r in results if isinstance(r, dict) and r.get("type") == "pairwise"]
    if not pairwise:
        kinds = sorted({str(r.get("type")) for r in results if isinstance(r, dict)})
        return {ERROR_COLUMN: f"{where} has no pairwise result (found: "
                f"{', '.join(kinds) or 'none'}); export a project with the Pairwise template"}
    value = pairwise[0].get("value") if isinstance(pairwise[0].get("value"), dict) else {}
    choice = {"left": "a", "right": "b"}.get(str(value.get("selected")))
    if choice is None:
        return {ERROR_COLUMN: f"{where}: pairwise 'selected' is {value.get('selected')!r}, "
                "expected 'left' or 'right'"}
    keys = _texts(data, pairwise[0].get("to_name"))
    prompt_key = next((k for k in PROMPT_KEYS if isinstance(data.get(k), str)), None)
    if keys is None or prompt_key is None:
        return {ERROR_COLUMN: f"{where}: the task's data ({', '.join(sorted(data)) or 'empty'}) "
                "lacks the prompt or the two texts; expected e.g. prompt, text1 and text2"}
    lead = annotation.get("lead_time")
    return {
        ERROR_COLUMN: None, "prompt": data[prompt_key], "response_a": data[keys[0]],
        "response_b": data[keys[1]], "choice": choice, "shown_first": "a",
        "reviewer_id": _reviewer(annotation.get("completed_by")),
        "created_at": annotation.get("created_at"),
        "seconds_spent": None if lead is None else str(lead),
        "category": data.get("category") if isinstance(data.get("category"), str) else None,
        "comparison_id": comparison_id(task.get("project", ""), task.get("id"),
                                       annotation.get("id")),
    }


def read_label_studio(path: Path, chunk_rows: int = 100_000) -> Iterator[pa.Table]:
    """Yield the export's annotations as staged chunks (mapping in the module docstring).

    The export is one JSON document, so it is parsed whole (Label Studio writes it whole too).
    """
    check_chunk_rows(chunk_rows)
    path = Path(path)
    try:
        tasks = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputFileError(
            f"{path} cannot be read as a Label Studio JSON export: {error}", where=str(path),
            expected="the JSON array written by Label Studio's Export -> JSON",
            fix="export the project again as JSON; nothing from this file was stored",
        ) from error
    if not isinstance(tasks, list):
        raise InputFileError(
            f"{path} is a JSON {json_kind(tasks)}, not an array of tasks", where=str(path),
            expected="the JSON array written by Label Studio's Export -> JSON",
            fix="export the project again as JSON")
    rows: list[dict[str, Any]] = []
    line = 0
    for task in tasks:
        annotations = task.get("annotations") if isinstance(task, dict) else None
        for annotation in annotations if isinstance(annotations, list) else []:
            line += 1
            fields = (map_annotation(task, annotation) if isinstance(annotation, dict)
                      else {ERROR_COLUMN: "an annotation is not a JSON object"})
            raw = json.dumps({"task": task.get("id"), "data": task.get("data"),
                              "annotation": annotation}, ensure_ascii=False, default=str)
            rows.append({LINE_COLUMN: line, SOURCE_COLUMN: str(path), RAW_COLUMN: raw, **fields})
            if len(rows) >= chunk_rows:
                yield rows_to_staged(rows, COLUMNS)
                rows = []
    if rows:
        yield rows_to_staged(rows, COLUMNS)
