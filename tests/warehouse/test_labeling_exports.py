"""Labeling-platform exports (Label Studio pairwise, Argilla ranking), detected by --format auto."""

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


def ranking(user: str, ranks: dict[str, int], status: str = "submitted") -> dict:
    return {"user_id": user, "status": status,
            "value": [{"rank": r, "value": name} for name, r in ranks.items()]}


def test_argilla_ranking_export_is_detected_and_ingested(tmp_path: Path) -> None:
    records = [
        {"prompt": "Is this chest pain urgent?", "reply_1": "Go to urgent care now.",
         "reply_2": "Book the earliest slot.", "reply_3": "I cannot help with that.",
         "reply-ranking": [ranking("u1", {"reply_1": 1, "reply_2": 2, "reply_3": 3}),
                           ranking("u2", {"reply_2": 1, "reply_1": 1, "reply_3": 2}),
                           ranking("u3", {"reply_1": 2, "reply_2": 1}, status="draft")],
         "reply-ranking-suggestion": None, "external_id": "rec-1", "metadata": "{}"},
        {"prompt": "Hello", "reply_1": "Hi!", "reply_2": "Good day.",
         "reply-ranking": [ranking("u1", {"reply_1": 2, "reply_4": 1})], "external_id": None},
    ]
    path = tmp_path / "argilla-export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    fmt, reason = detect_format(path)
    assert fmt == "argilla" and "reply-ranking" in reason
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, path)
    assert (report.rows_read, report.accepted, report.quarantined) == (8, 6, 2)
    choices = dict(con.execute(
        "SELECT comparison_id, choice FROM comparisons").fetchall())
    assert choices["argilla:rec-1:u1:reply_1:reply_3"] == "a"
    assert choices["argilla:rec-1:u2:reply_1:reply_2"] == "tie"
    assert choices["argilla:rec-1:u2:reply_2:reply_3"] == "a"
    reasons = " ".join(r for (r,) in con.execute("SELECT reason FROM quarantine").fetchall())
    assert "draft" in reasons and "reply_4" in reasons
    assert ingest_file(con, path).accepted == 0
    con.close()
