"""The HTTP API end to end: a real `dissensus api` server on a free port, real requests.

One server (no tokens, loopback) serves the module's plain tests; the token, kill and
concurrency tests start their own.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dissensus.analytics.api.client import Server, dissensus, start_server


def row(i: int, reviewer: str = "r1", choice: str = "a", **fields: object) -> dict:
    """A valid comparison; the same ``i`` always gives the same content."""
    return {"comparison_id": f"c{i}", "reviewer_id": reviewer, "choice": choice,
            "prompt": f"prompt {i % 7}", "response_a": f"A{i}", "response_b": f"B{i}",
            "category": "billing" if i % 2 else "scheduling", **fields}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("api") / "w.duckdb"
    running = start_server(db, "--max-body-mb", "1")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def seeded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own holding one comparison: the bad-input tests' answers (an unknown
    reviewer, not an empty warehouse) then do not depend on which tests ran before them."""
    db = tmp_path_factory.mktemp("api-seeded") / "w.duckdb"
    running = start_server(db, "--max-body-mb", "1")
    assert running.post_rows([row(1)]).status == 200
    yield running
    running.stop()


def test_post_then_query(server: Server) -> None:
    rows = [row(1), row(2, "r2", "b"), row(3, "r2", "sideways"), {"choice": "a"},
            row(5, "team/ünï code")]
    first = server.post_rows(rows)
    assert first.status == 200, first.body
    answer = first.body
    assert (answer["accepted"], answer["duplicates"], answer["quarantined"]) == (3, 0, 2)
    assert answer["rows"] == 5
    rejected = {r["line"]: r for r in answer["rejected"]}
    assert rejected[3]["field"] == "choice" and "sideways" in rejected[3]["reason"]
    assert 4 in rejected and rejected[4]["reason"]
    # the same body again adds nothing; a new body with a row seen before counts it a duplicate
    again = server.post_rows(rows).body
    assert again["accepted"] == 0 and again["duplicates"] == 5 and again["skipped"]
    ndjson = (json.dumps(row(2, "r2", "b")) + "\n" + json.dumps(row(4, "r3")) + "\n").encode()
    mixed = server.request("POST", "/v1/comparisons", ndjson,
                           content_type="application/x-ndjson").body
    assert (mixed["accepted"], mixed["duplicates"], mixed["quarantined"]) == (1, 1, 0)
    assert server.comparisons() == 4

    listed = server.get("/v1/reviewers?limit=1").body
    assert listed["total"] == 4 and len(listed["items"]) == 1
    assert listed["next"] and "offset=1" in listed["next"]
    second = server.get("/v1/reviewers?limit=1&offset=1").body
    assert second["items"][0]["reviewer_id"] != listed["items"][0]["reviewer_id"]
    card = server.get("/v1/reviewers/r2").body
    assert card["reviewer_id"] == "r2" and card["summary"]["n_votes"] == 1
    assert {f["figure"] for f in card["figures"]} >= {"reliability", "tie rate"}
    odd = server.get("/v1/reviewers/" + urllib.parse.quote("team/ünï code", safe="")).body
    assert odd["reviewer_id"] == "team/ünï code"
    quarantined = server.get("/v1/quarantine?batch=" + str(answer["batch_id"])).body
    assert quarantined["total"] == 2 and "sideways" in quarantined["items"][0]["raw"]


def test_an_ndjson_body_is_read_line_for_line_as_a_file_is(server: Server) -> None:
    """Blank lines are numbered but are not rows; a long line of white space is a row (and is
    quarantined), as `dissensus ingest` reads a file: the counts add up to the rows."""
    lines = [json.dumps(row(101)), "", "   ", json.dumps(row(102, "r2")), " " * 12,
             "\ufeff" + json.dumps(row(103)), json.dumps(row(104, "r2"))]
    body = ("\n".join(lines)).encode()  # no final newline
    answer = server.request("POST", "/v1/comparisons", body,
                            content_type="application/x-ndjson").body
    assert answer["rows"] == 5
    assert answer["accepted"] + answer["duplicates"] + answer["quarantined"] == answer["rows"]
    assert (answer["accepted"], answer["quarantined"]) == (3, 2)
    assert sorted(r["line"] for r in answer["rejected"]) == [5, 6]  # a mid-body mark is no BOM
    both = server.request("POST", "/v1/comparisons",
                          (json.dumps(row(105)) + "\n\n").encode() * 1
                          + (json.dumps(row(101)) + "\n").encode(),
                          content_type="application/x-ndjson").body
    assert (both["rows"], both["accepted"], both["duplicates"]) == (2, 1, 1)


def test_a_strict_post_stores_nothing_when_a_row_is_bad(server: Server) -> None:
    """`?strict=true`: one invalid row and the body stores nothing (422 in words); the same rows
    without it store the valid ones, and a valid strict body is stored whole."""
    rows = [row(201), row(202, "r2", "sideways"), row(203)]
    refused = server.request("POST", "/v1/comparisons?strict=true", json.dumps(rows).encode())
    assert refused.status == 422, refused.body
    error = refused.body["error"]
    assert error["code"] == "strict_mode" and "nothing" in error["message"]
    assert "choice" in error["fix"]  # the reasons travel with the refusal
    before = server.comparisons()
    kept = server.post_rows(rows).body
    assert (kept["accepted"], kept["quarantined"]) == (2, 1)
    whole = server.request("POST", "/v1/comparisons?strict=true",
                           json.dumps([row(204), row(205)]).encode()).body
    assert whole["accepted"] == 2 and server.comparisons() == before + 4


def test_the_server_checkpoints_when_the_posts_pause(tmp_path: Path) -> None:
    """Commits during a burst only write the log; the writer folds it into the file when the
    posts pause (as it rebuilds the vote index), so the log does not outlive the burst."""
    db = tmp_path / "w.duckdb"
    running = start_server(db)
    wal = db.with_name(db.name + ".wal")
    try:
        assert running.post_rows([row(i, f"r{i % 9}") for i in range(2_000)]).status == 200
        deadline = time.monotonic() + 30
        while wal.exists() and wal.stat().st_size and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not wal.exists() or wal.stat().st_size == 0, "the log was never checkpointed"
        assert running.comparisons() == 2_000
    finally:
        assert running.stop() == 0
    assert dissensus(db, "status").returncode == 0


def test_docs_and_health(server: Server) -> None:
    assert server.get("/healthz").body["status"] == "ok"
    spec = server.get("/openapi.json").body
    assert {"/v1/comparisons", "/v1/reviewers", "/v1/reviewers/{reviewer_id}", "/v1/pairs",
            "/v1/fits", "/v1/runs", "/v1/weights", "/v1/score", "/v1/jobs/fit",
            "/v1/jobs/train", "/v1/jobs/{job_id}"} <= set(spec["paths"])
    docs = server.get("/docs")
    assert docs.status == 200 and "swagger" in str(docs.body).lower()


@pytest.mark.parametrize(("method", "path", "body", "content_type", "status", "code"), [
    ("POST", "/v1/comparisons", b'[{"choice": "a",', "application/json", 400, "malformed_json"),
    ("POST", "/v1/comparisons", b"reviewer_id,choice\nr1,a\n", "text/csv", 415,
     "unsupported_content_type"),
    ("POST", "/v1/comparisons", b'{"rows": 5}', "application/json", 200, None),
    ("POST", "/v1/comparisons", b'"five"', "application/json", 400, "not_an_array"),
    ("POST", "/v1/comparisons", b"[]", "application/json", 400, "no_rows"),
    ("POST", "/v1/comparisons", b"\xff\xfe[]", "application/json", 400, "body_not_utf8"),
    ("POST", "/v1/comparisons", b"x" * (2 * 1024 * 1024), "application/json", 413,
     "body_too_large"),
    ("GET", "/v1/reviewers?limit=100000", None, None, 422, "invalid_request"),
    ("GET", "/v1/reviewers?offset=-1", None, None, 422, "invalid_request"),
    ("GET", "/v1/reviewers/nobody", None, None, 404, "unknown_reviewer"),
    ("GET", "/v1/reviewers/team%2Fnobody", None, None, 404, "unknown_reviewer"),
    ("GET", "/v1/reviewers/x'%3B%20DROP%20TABLE%20comparisons%3B--", None, None, 404,
     "unknown_reviewer"),
    ("GET", "/v1/pairs?fit=x'%20OR%20'1'%3D'1", None, None, 404, "unknown_fit"),
    ("GET", "/v1/pairs?verdict=maybe", None, None, 422, "invalid_request"),
    ("GET", "/v1/weights", None, None, 404, "no_fit"),
    ("GET", "/v1/jobs/job-nope", None, None, 404, "unknown_job"),
    ("POST", "/v1/score", b'{"pairs": []}', "application/json", 422, "invalid_request"),
    ("POST", "/v1/score", b'{"pairs": [{"prompt": "p", "response": "r"}]}', "application/json",
     404, "no_run"),
    ("POST", "/v1/jobs/train", b'{"kind": "sideways"}', "application/json", 422, None),
    ("POST", "/v1/jobs/fit", b'{"settings": {"n_schools": "many"}}', "application/json", 422,
     "invalid_settings"),
    ("DELETE", "/v1/reviewers", None, None, 405, "method_not_allowed"),
    ("GET", "/v2/reviewers", None, None, 404, "not_found"),
])
def test_bad_input_gets_a_clear_json_error_and_stores_nothing(
    seeded_server: Server, method: str, path: str, body: bytes | None,
    content_type: str | None, status: int, code: str | None,
) -> None:
    server = seeded_server
    before = server.comparisons()
    answer = server.request(method, path, body, content_type=content_type)
    assert answer.status == status, answer.body
    if status >= 400:
        error = answer.body["error"]
        assert error["message"] and (error["fix"] or error["expected"]), error
        assert "Traceback" not in json.dumps(answer.body)
        if code is not None:
            assert error["code"] == code, error
    else:  # {"rows": 5} is one object: stored as one row and quarantined, not a crash
        assert answer.body["quarantined"] == 1
    assert server.comparisons() == before


def test_tokens_scopes_and_binding(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    refused = dissensus(db, "api", "--host", "0.0.0.0", "--port", "1")
    assert refused.returncode == 2 and "no API token exists" in refused.stderr
    tokens = {}
    for scope in ("read", "write", "admin"):
        made = dissensus(db, "api", "token", "create", "--scope", scope)
        assert made.returncode == 0, made.stderr
        tokens[scope] = next(line for line in made.stdout.splitlines()
                             if line.startswith("dsn_"))
    stored = (tmp_path / "w.duckdb.api" / "tokens.json").read_text()
    assert all(token.split("_", 2)[2] not in stored for token in tokens.values())
    running = start_server(db)
    try:
        rows = [row(1)]
        missing = running.post_rows(rows, token="")
        assert missing.status == 401 and "needs a token" in missing.body["error"]["message"]
        assert missing.headers.get("www-authenticate") == "Bearer"
        wrong = running.post_rows(rows, token=tokens["write"][:-2] + "xx")
        assert wrong.status == 401 and "not known" in wrong.body["error"]["message"]
        read_only = running.post_rows(rows, token=tokens["read"])
        assert read_only.status == 403 and "scope 'write'" in read_only.body["error"]["message"]
        assert running.comparisons() == 0
        empty = running.get("/v1/reviewers", token=tokens["read"])
        assert empty.status == 404 and empty.body["error"]["code"] == "empty_data"
        assert running.post_rows(rows, token=tokens["write"]).body["accepted"] == 1
        assert running.get("/v1/reviewers", token=tokens["read"]).status == 200
        assert running.get("/v1/reviewers", token="").status == 401
        fit_with_write = running.request("POST", "/v1/jobs/fit", b"{}", token=tokens["write"])
        assert fit_with_write.status == 403
        # a token revoked while the server runs is refused from the next request
        token_id = tokens["read"].split("_")[1]
        assert dissensus(db, "api", "token", "revoke", token_id).returncode == 0
        assert running.get("/v1/reviewers", token=tokens["read"]).status == 401
        # a command that would write the warehouse is told which URL holds it
        source = tmp_path / "rows.jsonl"
        source.write_text(json.dumps(row(9)) + "\n")
        blocked = dissensus(db, "ingest", str(source))
        assert blocked.returncode == 2
        assert running.url in blocked.stderr and "/v1/comparisons" in blocked.stderr
        # DuckDB lets no reader beside the writing process: a read command reads the server's
        # snapshot instead, and says so (tests/e2e/test_dashboards_beside_api.py: the pages)
        running.wait_for_snapshot()
        reading = dissensus(db, "reviewers")
        assert reading.returncode == 0, reading.stderr
        assert running.url in reading.stderr and "snapshot" in reading.stderr
        assert "Traceback" not in blocked.stderr + reading.stderr
    finally:
        assert running.stop() == 0
    assert not (tmp_path / "w.duckdb.api" / "server.json").exists()
    assert not (tmp_path / "w.duckdb.api" / "snapshot.duckdb").exists()  # only while it runs
    assert dissensus(db, "status").returncode == 0


def test_kill_9_mid_request_then_retry(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    batch = [row(i, f"r{i % 50}") for i in range(40_000)]
    body = json.dumps(batch).encode()
    running = start_server(db)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(running.request, "POST", "/v1/comparisons", body)
        deadline = time.monotonic() + 60
        while not running.get("/healthz").body["writing"] and time.monotonic() < deadline:
            time.sleep(0.005)  # the writer has the batch: its ingest is under way
        assert time.monotonic() < deadline, "the batch never reached the writer"
        assert running.stop(signal.SIGKILL) == -signal.SIGKILL
        with pytest.raises(OSError):
            pending.result()
    # the stale note is ignored: the warehouse opens, and it holds all or none of the batch
    # (the killed server's snapshot, left behind, is not read: it is older than the file)
    status = dissensus(db, "status")
    assert status.returncode == 0, status.stderr
    assert "snapshot" not in status.stderr
    restarted = start_server(db)
    try:
        assert restarted.comparisons() in (0, len(batch))
        retry = restarted.request("POST", "/v1/comparisons", body).body
        assert retry["accepted"] + retry["duplicates"] == len(batch)
        assert restarted.comparisons() == len(batch)
        assert restarted.request("POST", "/v1/comparisons", body).body["accepted"] == 0
        assert restarted.comparisons() == len(batch)
    finally:
        restarted.stop()


BATCH = st.lists(st.one_of(st.integers(0, 59).map(lambda i: row(i, f"r{i % 5}")),
                           st.integers(0, 59).map(lambda i: row(i, "r9", "sideways")),
                           st.integers(0, 59).map(lambda i: row(i, f"r{i % 5}", "b"))),
                 min_size=1, max_size=25)


@pytest.fixture(scope="module")
def concurrent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("api-concurrent") / "w.duckdb"
    running = start_server(db)
    yield running
    running.stop()


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batches=st.lists(BATCH, min_size=2, max_size=6))
def test_concurrent_overlapping_posts_store_every_row_once(
    concurrent_server: Server, batches: list[list[dict]]
) -> None:
    """Clients post overlapping batches at once: each answer adds up to the rows it sent, and
    the warehouse gains exactly the distinct valid rows not stored before. Rows with the same
    comparison id but another choice are conflicts (quarantined), as in `dissensus ingest`."""
    before = concurrent_server.comparisons()
    with ThreadPoolExecutor(len(batches)) as pool:
        answers = list(pool.map(concurrent_server.post_rows, batches))
    for sent, answer in zip(batches, answers, strict=True):
        assert answer.status == 200, answer.body
        counts = answer.body
        assert counts["accepted"] + counts["duplicates"] + counts["quarantined"] == len(sent)
        # rejected lines are numbered within the request, also when it shared a batch
        if counts["skipped"] is None:
            lines = {r["line"]: r for r in counts["rejected"]}
            invalid = {n for n, r in enumerate(sent, 1) if r["choice"] == "sideways"}
            assert invalid <= set(lines)
            for n in set(lines) - invalid:  # the rest: a choice other than the stored one
                assert "comparison_id" in lines[n]["reason"], lines[n]
    gained = concurrent_server.comparisons() - before
    assert gained == sum(a.body["accepted"] for a in answers)
    valid_ids = {r["comparison_id"] for b in batches for r in b if r["choice"] != "sideways"}
    assert gained <= len(valid_ids)
    # every valid id posted is stored now (by this round or an earlier one), exactly once
    valid = [r for b in batches for r in b if r["choice"] != "sideways"]
    if valid:  # an empty post is refused in words (see the bad-input test), not counted
        reposted = concurrent_server.post_rows(valid).body
        assert reposted["accepted"] == 0


def _finished(server: Server, job: dict, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = server.get(job["poll"]).body
        if state["state"] in ("succeeded", "failed"):
            return state
        time.sleep(0.3)
    raise AssertionError(f"job {job['job_id']} did not finish: {state}")


@pytest.mark.slow
def test_fit_train_and_score_jobs(tmp_path: Path) -> None:
    data = tmp_path / "world"
    assert dissensus(tmp_path / "unused.duckdb", "simulate", str(data), "--n", "900"
                     ).returncode == 0
    running = start_server(tmp_path / "w.duckdb")
    try:
        body = (data / "comparisons.jsonl").read_bytes()
        posted = running.request("POST", "/v1/comparisons", body,
                                 content_type="application/x-ndjson").body
        assert posted["accepted"] > 800
        fit = running.request("POST", "/v1/jobs/fit", b'{"settings": {"n_schools": 1}}')
        assert fit.status == 202 and fit.body["state"] in ("queued", "running")
        train = running.request("POST", "/v1/jobs/train", json.dumps(
            {"kind": "weighted", "settings": {"encoder": "hashing", "epochs": 2}}).encode())
        queued = running.get(train.body["poll"]).body
        assert queued["state"] == "queued" and queued["queue_position"] == 1  # one at a time
        # reads and posts do not wait for the running job
        started = time.monotonic()
        assert running.get("/v1/fits").status == 200
        assert running.post_rows([row(1)]).body["accepted"] == 1
        assert time.monotonic() - started < 5
        done = _finished(running, fit.body)
        assert done["state"] == "succeeded", done
        fit_id = done["result"]["fit_id"]
        assert running.get("/v1/fits").body["items"][0]["fit_id"] == fit_id
        pairs = running.get("/v1/pairs?limit=5&category=billing").body
        assert pairs["fit_id"] == fit_id and pairs["total"] > 0
        assert all(p["category"] == "billing" for p in pairs["items"])
        verdict = pairs["items"][0]["verdict"]
        same = running.get(f"/v1/pairs?verdict={verdict}&limit=1000").body
        assert {p["verdict"] for p in same["items"]} == {verdict}
        weights = running.get(f"/v1/weights?fit={fit_id}&limit=10").body
        assert weights["total"] >= 800 and len(weights["items"]) == 10
        assert running.get("/v1/reviewers?limit=3").body["items"][0]["school"] is not None
        trained = _finished(running, train.body)
        assert trained["state"] == "succeeded", trained
        run_id = trained["result"]["run_id"]
        assert running.get("/v1/runs").body["items"][0]["run_id"] == run_id
        scored = running.request("POST", "/v1/score", json.dumps({"pairs": [
            {"prompt": "Can I move my appointment?", "response": "Yes, to Friday."},
            {"prompt": "Can I move my appointment?", "response": "Call us."}]}).encode()).body
        assert scored["run_id"] == run_id and len(scored["scores"]) == 2
        assert all(set(s) == set(scored["heads"]) for s in scored["scores"])
        failed = _finished(running, running.request(
            "POST", "/v1/jobs/train", b'{"kind": "weighted", "fit": "fit-nope", '
            b'"settings": {"encoder": "hashing"}}').body)
        assert failed["state"] == "failed" and failed["error"]["message"]
    finally:
        running.stop()


def test_reviewers_say_in_words_what_the_votes_cannot_support(tmp_path: Path, fake_fit) -> None:
    """GET /v1/reviewers carries the notes `dissensus reviewers` prints: the fit's and the
    audit's count of reviewers whose votes cannot tell careful from lapsing."""
    from datetime import datetime

    import polars as pl

    from dissensus.warehouse.db import connect
    from dissensus.warehouse.ingest import ingest_file

    db = tmp_path / "w.duckdb"
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row(i, f"r{i % 4}")) + "\n" for i in range(48)))
    con = connect(db)
    ingest_file(con, source)
    note = "Only 4 reviewers: schools cannot be told apart (test)."
    fake_fit(con, "fit-n", created_at=datetime(2026, 3, 1), method="test", n_schools=1,
             n_comparisons=48, seconds=1.0, diagnostics=json.dumps({"verdict_notes": [note]}),
             reviewers=pl.DataFrame({
                 "reviewer_id": [f"r{j}" for j in range(4)], "n_comparisons": 12,
                 "reliability": 0.9, "reliability_low": 0.7, "reliability_high": 0.98,
                 "position_bias": 0.0, "school": 0, "school_probability": 1.0,
                 "flagged": False, "lapse_evidence": [0.05, 1.2, 0.9, 0.1]}))
    con.close()
    running = start_server(db)
    try:
        listed = running.get("/v1/reviewers").body
        assert listed["notes"][0] == note
        assert listed["notes"][1].startswith("2 of 4 reviewers: their votes favour neither")
        verdicts = {r["reviewer_id"]: r["verdict"] for r in listed["items"]}
        assert verdicts == {"r0": "ok", "r1": "cannot tell from their votes",
                            "r2": "cannot tell from their votes", "r3": "ok"}
    finally:
        running.stop()
