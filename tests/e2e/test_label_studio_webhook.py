"""The Label Studio webhook end to end: a real `dissensus api` server, events shaped as Label
Studio sends them (``{"action", "annotation", "task", "project"}``; deletions carry ids only)."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissensus.analytics.api.client import Answer, Server, dissensus, start_server
from dissensus.warehouse.db import connect
from dissensus.warehouse.queries import model_frame

PATH = "/v1/webhooks/label-studio"


def annotation(ann_id: int, selected: str | None, task: int = 5, user: int = 3,
               **extra: object) -> dict[str, Any]:
    result = [] if selected is None else [
        {"id": "pw1", "from_name": "pw", "to_name": "text1,text2", "type": "pairwise",
         "value": {"selected": selected}}]
    return {"id": ann_id, "task": task, "completed_by": user, "result": result,
            "was_cancelled": False, "ground_truth": False, "lead_time": 12.5,
            "created_at": "2026-03-01T10:00:00Z", "updated_at": "2026-03-01T10:00:00Z", **extra}


def task(task_id: int = 5, project: int = 7) -> dict[str, Any]:
    return {"id": task_id, "project": project, "is_labeled": True,
            "data": {"prompt": f"Can I move appointment {task_id}?",
                     "text1": f"Yes, to Friday ({task_id}).",
                     "text2": f"Please call the clinic ({task_id}).", "category": "scheduling"}}


def event(action: str, ann: dict | list, tsk: dict | list, project: int = 7) -> dict[str, Any]:
    return {"action": action, "annotation": ann, "task": tsk,
            "project": {"id": project, "title": "Preferences", "label_config": "<View/>"}}


def deletion(ids: list[int], project: int = 7, action: str = "ANNOTATIONS_DELETED",
             key: str = "annotations") -> dict[str, Any]:
    return {"action": action, key: [{"id": i} for i in ids], "project": {"id": project}}


def send(server: Server, body: object, **kwargs: Any) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return server.request("POST", PATH, raw, **kwargs)


def statuses(answer: Answer) -> list[str]:
    assert answer.status == 200, answer.body
    return [r["status"] for r in answer.body["results"]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("webhook") / "w.duckdb"
    running = start_server(db)
    yield running
    running.stop()


def test_created_redelivered_updated_deleted(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    running = start_server(db)
    try:
        created = event("ANNOTATION_CREATED", annotation(17, "left"), task())
        first = send(running, created)
        assert statuses(first) == ["accepted"]
        result = first.body["results"][0]
        assert result["comparison_id"] == "label-studio:7:5:17"  # the export adapter's id
        assert result["choice"] == "a" and running.comparisons() == 1
        # Label Studio redelivers: nothing is added twice
        assert statuses(send(running, created)) == ["duplicate"]
        assert running.comparisons() == 1
        # the reviewer changes their pick: the new choice is current, the old one kept
        updated = copy.deepcopy(created)
        updated["action"] = "ANNOTATION_UPDATED"
        updated["annotation"]["result"][0]["value"]["selected"] = "right"
        changed = send(running, updated)
        assert statuses(changed) == ["updated"]
        assert changed.body["results"][0] | {"choice": "b", "previous_choice": "a"} == \
            changed.body["results"][0]
        assert running.comparisons() == 1
        assert statuses(send(running, updated)) == ["duplicate"]
        revised = running.get("/v1/withdrawals?reason=revised").body
        assert revised["total"] == 1
        old = revised["items"][0]
        assert (old["comparison_id"], old["choice"], old["current_choice"]) == (
            "label-studio:7:5:17", "a", "b")
        assert "ANNOTATION_UPDATED" in old["source"]
        # deleted in Label Studio: withdrawn; an unknown id is said so, not an error
        gone = send(running, deletion([17, 404]))
        assert statuses(gone) == ["withdrawn", "unknown"]
        assert gone.body["counts"] == {"withdrawn": 1, "unknown": 1}
        assert running.comparisons() == 0
        assert statuses(send(running, deletion([17]))) == ["duplicate"]  # redelivered delete
        # a late redelivery of the creation does not bring the deleted judgment back
        late = send(running, created)
        assert statuses(late) == ["quarantined"]
        assert late.body["results"][0]["field"] == "comparison_id"
        assert "withdrawn" in late.body["results"][0]["reason"]
        listed = running.get("/v1/withdrawals?limit=1").body
        assert listed["total"] == 2 and listed["next"]
        assert listed["items"][0]["reason"] == "deleted"
        assert listed["items"][0]["choice"] == "b"  # the row as it was when deleted
    finally:
        assert running.stop() == 0
    con = connect(db, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0] == 0
        kept = con.execute("SELECT reason, choice, reviewer_id FROM comparison_withdrawals "
                           "ORDER BY withdrawal_id").fetchall()
        assert kept == [("revised", "a", "3"), ("deleted", "b", "3")]
    finally:
        con.close()
    shown = dissensus(db, "withdrawals")
    assert shown.returncode == 0, shown.stderr
    assert "label-studio:7:5:17" in shown.stdout and "deleted" in shown.stdout


def test_model_frame_reads_current_comparisons_only(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    running = start_server(db)
    try:
        for ann_id, tsk in ((31, 8), (32, 8), (33, 9)):
            body = event("ANNOTATION_CREATED", annotation(ann_id, "left", task=tsk,
                                                          user=ann_id), task(tsk))
            assert statuses(send(running, body)) == ["accepted"]
        assert statuses(send(running, deletion([32]))) == ["withdrawn"]
    finally:
        assert running.stop() == 0
    con = connect(db, read_only=True)
    try:
        assert sorted(model_frame(con)["comparison_id"]) == ["label-studio:7:8:31",
                                                             "label-studio:7:9:33"]
        assert con.execute("SELECT comparison_id FROM comparison_withdrawals").fetchall() == [
            ("label-studio:7:8:32",)]
    finally:
        con.close()


def test_bulk_created_with_skipped_annotations_then_a_task_deleted(server: Server) -> None:
    anns = [annotation(21, "left", task=6), annotation(22, None, task=6),
            annotation(23, "right", task=60, was_cancelled=True), annotation(24, "right", task=60)]
    bulk = send(server, event("ANNOTATIONS_CREATED", anns, [task(6), task(6), task(60),
                                                            task(60)]))
    assert statuses(bulk) == ["accepted", "quarantined", "quarantined", "accepted"]
    skipped = bulk.body["results"]
    assert skipped[1]["field"] and "no pairwise result" in skipped[1]["reason"]
    assert "was_cancelled" in skipped[2]["reason"]
    quarantined = server.get(f"/v1/quarantine?batch={skipped[1]['batch_id']}").body
    assert quarantined["total"] == 2 and '"id": 22' in quarantined["items"][0]["raw"]
    # deleting a task removes its annotations without an annotation event
    tasks_gone = send(server, deletion([6, 999], action="TASKS_DELETED", key="tasks"))
    assert statuses(tasks_gone) == ["withdrawn", "unknown"]
    assert tasks_gone.body["results"][0]["comparison_id"] == "label-studio:7:6:21"


def test_other_actions_are_ignored_with_the_reason(server: Server) -> None:
    before = server.comparisons()
    answer = send(server, {"action": "PROJECT_UPDATED", "project": {"id": 7}})
    assert answer.status == 200 and answer.body["status"] == "ignored"
    assert "PROJECT_UPDATED" in answer.body["reason"] and answer.body["results"] == []
    assert server.comparisons() == before
    spec = server.get("/openapi.json").body
    assert {PATH, "/v1/withdrawals"} <= set(spec["paths"])


GOOD = event("ANNOTATION_CREATED", annotation(41, "left", task=11), task(11))


@pytest.mark.parametrize(("body", "status", "said"), [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe{}", 400, "UTF-8"),
    (b"[1, 2]", 422, "not a webhook event"),
    ({"annotation": GOOD["annotation"], "task": GOOD["task"]}, 422, "'action'"),
    ({"action": "ANNOTATION_CREATED", "task": GOOD["task"]}, 422, "'annotation'"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"result": []}, "task": GOOD["task"]}, 422,
     "integer id"),
    ({"action": "ANNOTATION_CREATED", "annotation": GOOD["annotation"]}, 422, "no 'task'"),
    ({"action": "ANNOTATION_UPDATED", "annotation": GOOD["annotation"],
      "task": {"data": GOOD["task"]["data"]}}, 422, "no task"),
    (event("ANNOTATIONS_CREATED", [GOOD["annotation"], {"task": 11}], [task(11), task(11)]),
     422, "integer id"),
    ({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": "x"}]}, 422, "integer id"),
    ({"action": "ANNOTATIONS_DELETED"}, 422, "'annotations'"),
])
def test_malformed_events_get_a_clear_error_and_store_nothing(
    server: Server, body: object, status: int, said: str
) -> None:
    before = (server.comparisons(), server.get("/v1/withdrawals").body["total"])
    answer = send(server, body)
    assert answer.status == status, answer.body
    error = answer.body["error"]
    assert said in error["message"], error
    assert error["expected"] and error["fix"] and "nothing was stored" in error["fix"]
    assert "Traceback" not in json.dumps(answer.body)
    assert (server.comparisons(), server.get("/v1/withdrawals").body["total"]) == before


def test_the_webhook_needs_a_write_token(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    tokens = {}
    for scope in ("read", "write"):
        made = dissensus(db, "api", "token", "create", "--scope", scope)
        assert made.returncode == 0, made.stderr
        tokens[scope] = next(line for line in made.stdout.splitlines()
                             if line.startswith("dsn_"))
    running = start_server(db)
    try:
        refused = send(running, GOOD, token=tokens["read"])
        assert refused.status == 403 and "scope 'write'" in refused.body["error"]["message"]
        assert send(running, GOOD, token="").status == 401
        assert running.comparisons() == 0
        assert statuses(send(running, GOOD, token=tokens["write"])) == ["accepted"]
        assert running.get("/v1/withdrawals", token=tokens["read"]).status == 200
    finally:
        assert running.stop() == 0


PROJECTS = itertools.count(1000)
OPS = st.lists(st.tuples(st.sampled_from(["create", "update", "delete"]), st.integers(1, 3),
                         st.sampled_from(["left", "right"])), min_size=1, max_size=8)


@settings(max_examples=10, deadline=None)
@given(ops=OPS)
def test_any_sequence_of_events_ends_in_the_state_label_studio_has(
    server: Server, ops: list[tuple[str, int, str]]
) -> None:
    """Whatever order creations, updates and deletions come in (redeliveries included), each
    answer is what the annotation's history implies, and the current comparisons are exactly the
    annotations Label Studio still holds."""
    project = next(PROJECTS)  # a project of its own per example: the server is shared
    before = server.comparisons()
    current: dict[int, str] = {}
    deleted: set[int] = set()
    for action, ann_id, selected in ops:
        choice = {"left": "a", "right": "b"}[selected]
        if action == "delete":
            expected = ("withdrawn" if ann_id in current else
                        "duplicate" if ann_id in deleted else "unknown")
            got = statuses(send(server, deletion([ann_id], project=project)))
            if ann_id in current:
                del current[ann_id]
                deleted.add(ann_id)
        else:
            body = event("ANNOTATION_CREATED" if action == "create" else "ANNOTATION_UPDATED",
                         annotation(ann_id, selected, task=ann_id), task(ann_id, project),
                         project=project)
            if ann_id in deleted:
                expected = "quarantined"  # a deleted annotation does not come back
            elif current.get(ann_id) == choice:
                expected = "duplicate"
            elif ann_id in current:  # another choice: a revision, or a conflict on creation
                expected = "updated" if action == "update" else "quarantined"
            else:
                expected = "accepted"
            got = statuses(send(server, body))
            if expected in ("accepted", "updated"):
                current[ann_id] = choice
        assert got == [expected], (action, ann_id, selected)
    assert server.comparisons() - before == len(current)
