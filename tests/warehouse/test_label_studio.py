"""Label Studio pairwise exports: detected by --format auto, one comparison per annotation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from dissensus.warehouse.adapters.detect import detect_format
from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file


def annotation(ann_id: int, user: object, selected: str | None, **extra: object) -> dict:
    result = [] if selected is None else [
        {"from_name": "pw", "to_name": "text1,text2", "type": "pairwise",
         "value": {"selected": selected}}]
    return {"id": ann_id, "completed_by": user, "result": result, "was_cancelled": False,
            "created_at": "2026-03-01T10:00:00Z", "lead_time": 12.5, **extra}


def export(tasks: list[dict]) -> str:
    return json.dumps(tasks, indent=1)


TASKS = [
    {"id": 1, "project": 7, "data": {"prompt": "Can I move my appointment?",
                                     "text1": "Yes, to Friday.", "text2": "Call the clinic.",
                                     "category": "scheduling"},
     "annotations": [annotation(11, 3, "left"), annotation(12, {"id": 4, "email": "b@x.org"},
                                                           "right")]},
    {"id": 2, "project": 7, "data": {"question": "Is this chest pain urgent?",
                                     "answer1": "Go to urgent care now.",
                                     "answer2": "Book the earliest slot."},
     "annotations": [annotation(21, 3, "right"), annotation(22, 5, None),
                     annotation(23, 6, "left", was_cancelled=True)]},
    {"id": 3, "project": 7, "data": {"prompt": "Hello"}, "annotations": []},
]


def test_label_studio_export_is_detected_and_ingested(tmp_path: Path) -> None:
    tasks = copy.deepcopy(TASKS)
    path = tmp_path / "project-7-export.json"
    path.write_text(export(tasks))
    fmt, reason = detect_format(path)
    assert fmt == "label-studio" and "pairwise" in reason
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, path)
    assert (report.rows_read, report.accepted, report.quarantined) == (5, 3, 2)
    rows = con.execute("""
        SELECT comparison_id, reviewer_id, choice, seconds_spent, category
        FROM comparisons ORDER BY comparison_id""").fetchall()
    assert rows == [("label-studio:7:1:11", "3", "a", 12.5, "scheduling"),
                    ("label-studio:7:1:12", "b@x.org", "b", 12.5, "scheduling"),
                    ("label-studio:7:2:21", "3", "b", 12.5, None)]
    reasons = dict(con.execute("SELECT line, reason FROM quarantine").fetchall())
    assert "no pairwise result" in reasons[4] and "was_cancelled" in reasons[5]
    # a later export of the same project with one more annotation adds only that one
    tasks[2]["annotations"].append(annotation(31, 5, "left"))
    tasks[2]["data"] |= {"text1": "Hi!", "text2": "Good day."}
    path.write_text(export(tasks))
    again = ingest_file(con, path)
    assert (again.accepted, again.duplicates) == (1, 3)
    con.close()


def test_other_json_is_not_taken_for_label_studio(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"reviewer_id": "r1", "choice": "a", "prompt": "p",
                                "response_a": "x", "response_b": "y"}) + "\n")
    assert detect_format(path)[0] == "jsonl"
