"""``POST /v1/webhooks/label-studio``: Label Studio's annotation events become comparisons.

Label Studio posts one JSON event per change (``{"action", "annotation", "task", "project"}``;
deletions carry only ids). What each action does:

* ``ANNOTATION_CREATED`` / ``ANNOTATIONS_CREATED``: each annotation is written as a one-task
  Label Studio export and ingested by :func:`dissensus.warehouse.ingest.ingest_file` with the
  export adapter (:mod:`dissensus.warehouse.adapters.label_studio`), on the API's single writer:
  the same mapping, validation, quarantine and idempotence as ``dissensus ingest export.json``
  and ``POST /v1/comparisons``. The comparison id is the export's
  (``label-studio:<project>:<task>:<annotation>``), so a redelivered event, or an export of the
  same project ingested later, adds nothing twice.
* ``ANNOTATION_UPDATED``: the same, as a revision: when the annotation's comparison is stored
  with other content, the new version replaces it and the old one is kept in
  ``comparison_withdrawals`` (:mod:`dissensus.warehouse.withdrawals`).
* ``ANNOTATIONS_DELETED`` (and ``TASKS_DELETED``, which removes a task's annotations without an
  annotation event): the comparisons are withdrawn: moved whole to ``comparison_withdrawals``.
* Anything else (``PROJECT_UPDATED``, ...): 200 with ``status: ignored`` and why, for Label
  Studio treats other answers as failed deliveries.

A payload that is not such an event (no action, no annotation object, an annotation without an
id, a task missing) is refused with 400/422 before anything is stored; an annotation that holds
no pairwise judgment is an ordinary quarantined row with its reason.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from dissensus.analytics.api.access import require
from dissensus.analytics.api.errors import ApiError
from dissensus.analytics.api.service import Warehouse
from dissensus.warehouse import withdrawals
from dissensus.warehouse.adapters.label_studio import NAME as LS_FORMAT
from dissensus.warehouse.adapters.label_studio import comparison_id, id_part_sql
from dissensus.warehouse.artefacts import api_folder
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.json_checks import json_kind

router = APIRouter(prefix="/v1")
CREATED: Final = frozenset({"ANNOTATION_CREATED", "ANNOTATIONS_CREATED"})
UPDATED: Final = frozenset({"ANNOTATION_UPDATED"})
DELETED: Final = frozenset({"ANNOTATIONS_DELETED", "ANNOTATION_DELETED"})
TASKS_DELETED: Final = frozenset({"TASKS_DELETED", "TASK_DELETED"})
HANDLED: Final = sorted(CREATED | UPDATED | DELETED | TASKS_DELETED)
SETUP_FIX: Final = ("in Label Studio's webhook settings keep 'Send payload' on and send the "
                    "annotation events; nothing was stored")
EXAMPLE: Final = {
    "action": "ANNOTATION_CREATED",
    "annotation": {"id": 17, "task": 5, "completed_by": 3, "lead_time": 12.5,
                   "created_at": "2026-03-01T10:00:00Z", "was_cancelled": False,
                   "result": [{"type": "pairwise", "from_name": "pw", "to_name": "text1,text2",
                               "value": {"selected": "left"}}]},
    "task": {"id": 5, "project": 7, "data": {"prompt": "Can I move my appointment?",
                                             "text1": "Yes, to Friday.",
                                             "text2": "Please call the clinic."}},
    "project": {"id": 7, "title": "Preferences"},
}


@dataclass
class Event:
    """A parsed webhook event: what to do and with which annotations, tasks or ids."""

    action: str
    project: int | None
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    """(task, annotation) for created / updated events, the task carrying its project."""
    ids: list[str] = field(default_factory=list)
    """Annotation (or task) ids of a deletion."""
    ignored: str | None = None


def _invalid(message: str, expected: str, where: str = "the event") -> ApiError:
    return ApiError(422, "invalid_event", message, where=where, expected=expected,
                    fix=SETUP_FIX)


def _an_id(value: object) -> str | None:
    """A Label Studio id (an integer, or its digits as text) as text; None otherwise (ids are
    parts of comparison ids, split at ':')."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None


def _objects(value: object) -> list[Any] | None:
    """An object or a list of them as a list; None for anything else."""
    if isinstance(value, dict):
        return [value]
    return value if isinstance(value, list) else None


def _project_of(payload: dict[str, Any]) -> int | None:
    project = payload.get("project")
    if isinstance(project, dict):
        project = project.get("id")
    found = _an_id(project)
    return int(found) if found is not None else None


def _ids(payload: dict[str, Any], action: str, key: str, what: str) -> list[str]:
    # Label Studio names the list `annotations` / `tasks`; one deleted object may come alone
    items = _objects(payload.get(key + "s", payload.get(key)))
    if items is None and "id" in payload:
        items = [{"id": payload["id"]}]
    if items is None:
        raise _invalid(f"The {action} event holds no '{key}s' list.",
                       f"'{key}s': [{{\"id\": 17}}, ...], the {what} deleted")
    ids = []
    for n, item in enumerate(items, 1):
        found = _an_id(item.get("id")) if isinstance(item, dict) else None
        if found is None:
            raise _invalid(f"{what.capitalize()} {n} of the {action} event has no integer id "
                           f"(got {json.dumps(item, default=str)[:80]}).",
                           f"{{\"id\": <integer>}} per {what}", where=f"{key}s[{n - 1}]")
        ids.append(found)
    return ids


def _task_for(annotation: dict[str, Any], n: int, tasks: list[Any],
              count: int) -> dict[str, Any]:
    """The task an annotation belongs to: named by the annotation's ``task`` id, else by
    position (Label Studio lists bulk events' tasks in the annotations' order)."""
    named = annotation.get("task")
    if isinstance(named, dict):
        return named
    wanted = _an_id(named)
    for task in tasks:
        if isinstance(task, dict) and wanted is not None and _an_id(task.get("id")) == wanted:
            return task
    if len(tasks) == count and isinstance(tasks[n], dict) and wanted is None:
        return tasks[n]
    if len(tasks) == 1 and isinstance(tasks[0], dict) and wanted is None:
        return tasks[0]
    which = "no 'task'" if not tasks else f"no task {named!r:.40}"
    raise _invalid(f"The event carries {which} for annotation {annotation.get('id')}: the "
                   "task's data hold the texts compared.",
                   "'task': the annotation's task object with 'id' and 'data' (the texts "
                   "compared)", where=f"annotation[{n}]")


def parse_event(raw: bytes) -> Event:
    """The event in ``raw``; :class:`ApiError` (400 / 422) for a body that is not one."""
    try:
        payload = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise ApiError(400, "body_not_utf8", "The body is not UTF-8 text.",
                       expected="a UTF-8 JSON webhook event", fix=SETUP_FIX) from error
    except json.JSONDecodeError as error:
        raise ApiError(400, "malformed_json",
                       f"The body is not valid JSON: {error.msg} at line {error.lineno}, "
                       f"column {error.colno}.", expected="a Label Studio webhook event "
                       "(a JSON object with 'action')", fix=SETUP_FIX) from error
    if not isinstance(payload, dict):
        raise _invalid(f"The body is a JSON {json_kind(payload)}, not a webhook event.",
                       "a JSON object with 'action', e.g. ANNOTATION_CREATED")
    action = payload.get("action")
    if not isinstance(action, str) or not action.strip():
        raise _invalid(f"The event has no 'action' (got {action!r:.40}).",
                       "'action': one of " + ", ".join(HANDLED))
    action = action.strip().upper()
    project = _project_of(payload)
    if action in DELETED:
        return Event(action, project, ids=_ids(payload, action, "annotation", "annotation"))
    if action in TASKS_DELETED:
        return Event(action, project, ids=_ids(payload, action, "task", "task"))
    if action not in CREATED | UPDATED:
        return Event(action, project, ignored=(
            f"{action} is not an annotation event; only {', '.join(HANDLED)} change "
            "comparisons. Nothing was stored (unselect this event in the webhook's settings "
            "to stop sending it)."))
    annotations = _objects(payload.get("annotation", payload.get("annotations")))
    if annotations is None:
        raise _invalid(f"The {action} event holds no 'annotation' object.",
                       "'annotation': the annotation with its 'id' and 'result'")
    tasks = _objects(payload.get("task", payload.get("tasks"))) or []
    pairs = []
    for n, annotation in enumerate(annotations):
        if not isinstance(annotation, dict) or _an_id(annotation.get("id")) is None:
            got = json.dumps(annotation, default=str)[:80]
            raise _invalid(f"Annotation {n + 1} of the {action} event has no integer id "
                           f"(got {got}).", "an annotation object with an integer 'id'",
                           where=f"annotation[{n}]")
        task = dict(_task_for(annotation, n, tasks, len(annotations)))
        if _an_id(task.get("id")) is None:
            raise _invalid(f"The task of annotation {annotation['id']} has no integer id.",
                           "'task': {\"id\": <integer>, \"data\": {...}}", where="task")
        task.setdefault("project", "" if project is None else project)
        pairs.append((task, annotation))
    return Event(action, project, pairs=pairs)


def _spool(db_path: Path, event: Event) -> Path:
    """The event's annotations as a Label Studio export (one task per annotation, so line n
    is annotation n), where the batch's ``file_path`` will point."""
    folder = api_folder(db_path) / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / (f"post-v1-webhooks-label-studio-{event.action.lower()}-{stamp}-"
                     f"{secrets.token_hex(4)}.json")
    tasks = [{**task, "annotations": [annotation]} for task, annotation in event.pairs]
    path.write_text(json.dumps(tasks, ensure_ascii=False, default=str), encoding="utf-8")
    return path


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _source(event: Event) -> str:
    project = "?" if event.project is None else event.project
    return f"Label Studio webhook {event.action} (project {project})"


def store(con: duckdb.DuckDBPyConnection, warehouse: Warehouse, salt: str | None,
          event: Event) -> list[dict[str, Any]]:
    """Ingest a created / updated event's annotations as one batch; one result each."""
    if not event.pairs:
        return []
    spooled = _spool(warehouse.path, event)
    try:
        report = ingest_file(con, spooled, fmt=LS_FORMAT, salt=salt, refresh_index=False,
                             revise=_source(event) if event.action in UPDATED else None,
                             skip_seen_file=False)
    finally:
        spooled.unlink(missing_ok=True)  # its rows live in the warehouse (or nowhere)
    if report.accepted:
        warehouse.mark_index_dirty()
        warehouse.changed()  # before the answer goes out: a read after it sees the rows
    batch = int(report.batch_id or 0)
    ids = [comparison_id(t.get("project", ""), t.get("id"), a.get("id")) for t, a in event.pairs]
    rejected = {int(line): (fld, reason) for line, fld, reason in con.execute(
        "SELECT line, field, reason FROM quarantine WHERE batch_id = ?", [batch]).fetchall()}
    stored = {str(cid): (int(b), str(choice)) for cid, b, choice in con.execute(
        "SELECT comparison_id, batch_id, choice FROM comparisons "
        "WHERE comparison_id IN (SELECT unnest(CAST(? AS VARCHAR[])))", [ids]).fetchall()}
    revised = withdrawals.revisions_in_batch(con, batch)
    results = []
    for line, ((task, annotation), cid) in enumerate(zip(event.pairs, ids, strict=True), 1):
        result: dict[str, Any] = {"annotation": annotation["id"], "task": task.get("id"),
                                  "comparison_id": cid}
        if line in rejected:
            fld, reason = rejected[line]
            result |= {"status": "quarantined", "field": fld or "annotation", "reason": reason,
                       "batch_id": batch, "line": line}
            if cid in stored:
                result["kept"] = "the version stored before stays current"
        elif cid in revised:
            withdrawal_id, previous = revised[cid]
            result |= {"status": "updated", "choice": stored[cid][1],
                       "previous_choice": previous, "withdrawal_id": withdrawal_id}
        elif cid in stored and stored[cid][0] == batch:
            result |= {"status": "accepted", "choice": stored[cid][1]}
        else:
            result |= {"status": "duplicate", "choice": stored.get(cid, (0, None))[1],
                       "reason": "stored before with the same content; nothing added"}
        results.append(result)
    return results


def withdraw(con: duckdb.DuckDBPyConnection, warehouse: Warehouse,
             event: Event) -> list[dict[str, Any]]:
    """Withdraw the comparisons of a deletion's annotations (or tasks); one result per
    comparison withdrawn, or per id that matched none."""
    part = "task" if event.action in TASKS_DELETED else "annotation"
    where = f"{id_part_sql('comparison_id', part)} IN (SELECT unnest(CAST(? AS VARCHAR[])))"
    params: list[object] = [event.ids]
    if event.project is not None:  # '' is an export whose tasks named no project
        where += f" AND {id_part_sql('comparison_id', 'project')} IN (?, '')"
        params.append(str(event.project))
    select = (f"SELECT {id_part_sql('comparison_id', part)}, comparison_id, "
              f"{id_part_sql('comparison_id', 'project')}")
    current: dict[str, list[tuple[str, str]]] = {}
    for key, cid, project in con.execute(f"{select} FROM comparisons WHERE {where}",
                                         params).fetchall():
        current.setdefault(str(key), []).append((str(cid), str(project)))
    before: dict[str, list[str]] = {}
    for key, cid, _ in con.execute(f"{select} FROM comparison_withdrawals WHERE reason = "
                                   f"'{withdrawals.DELETED}' AND {where}", params).fetchall():
        before.setdefault(str(key), []).append(str(cid))
    # an id alone is ambiguous when several projects hold it (only when the event names none)
    ambiguous = {k for k, found in current.items() if len({p for _, p in found} - {""}) > 1}
    chosen = [cid for k, found in current.items() if k not in ambiguous for cid, _ in found]
    done = withdrawals.withdraw(con, chosen, _source(event))
    if done:
        warehouse.mark_index_dirty()
        warehouse.changed()
    when = withdrawals.deleted_before(con, [c for found in before.values() for c in found])
    results: list[dict[str, Any]] = []
    for key in dict.fromkeys(event.ids):
        head: dict[str, Any] = {part: int(key)}
        if key in ambiguous:
            results.append(head | {"status": "ambiguous", "comparison_ids": sorted(
                c for c, _ in current[key]), "reason": f"{part} {key} is stored under several "
                "projects and the event names none; nothing was withdrawn (withdraw by hand "
                "or send the event with its project)"})
        elif key in current:
            results.extend(head | {"status": "withdrawn", "comparison_id": cid,
                                   "withdrawal_id": done[cid]} for cid, _ in current[key])
        elif key in before:
            results.extend(head | {"status": "duplicate", "comparison_id": cid,
                                   "withdrawal_id": when[cid][0],
                                   "reason": f"withdrawn before, at {_utc(when[cid][1])}; "
                                   "nothing to do"} for cid in before[key])
        else:
            results.append(head | {"status": "unknown", "reason": f"no comparison from this "
                                   f"{part} is stored (skipped, quarantined, or made before the "
                                   "webhook was set up); nothing to withdraw"})
    return results


def answer(event: Event, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON answer: what was done per annotation, and the counts by status."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    body: dict[str, Any] = {"action": event.action, "project": event.project,
                            "status": "ignored" if event.ignored else "processed",
                            "counts": counts, "results": results}
    if event.ignored:
        body["reason"] = event.ignored
    return body


@router.post(
    "/webhooks/label-studio", dependencies=[Depends(require("write"))], tags=["write"],
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object"}, "example": EXAMPLE}}}},
)
async def label_studio_webhook(request: Request) -> dict[str, Any]:
    """A Label Studio webhook event (pairwise template): annotations created or updated become
    comparisons (an update keeps the old version as withdrawn), deleted ones are withdrawn.

    The answer lists per annotation `accepted`, `duplicate`, `updated`, `withdrawn`,
    `quarantined` (with `field` and `reason`) or `unknown`; other actions answer
    `status: ignored` with the reason. A payload that is not an annotation event gets 400/422
    and nothing is stored."""
    raw = await request.body()  # the size limit is enforced while it streams in (app.py)
    event = await run_in_threadpool(parse_event, raw)
    if event.ignored:
        return answer(event, [])
    warehouse: Warehouse = request.app.state.warehouse
    salt = request.app.state.posts.salt

    def work(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
        if event.pairs or event.action in CREATED | UPDATED:
            return store(con, warehouse, salt, event)
        return withdraw(con, warehouse, event)

    results = await asyncio.wrap_future(warehouse.write(work))
    return answer(event, results)
