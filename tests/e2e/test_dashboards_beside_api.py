"""The dashboards and the read commands keep working while `dissensus api` holds the warehouse.

A real server (uvicorn, a free port, its own process) holds a demo warehouse with a FAKE fit
and run; DuckDB then admits no other process to the file, so the pages (under Streamlit's
AppTest, in this process) and `dissensus reviewers` read the server's snapshot. Posts to the
API reach the pages once the snapshot is refreshed; when the server stops, the pages read the
warehouse itself again.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from streamlit.testing.v1 import AppTest

from dissensus.analytics.api.client import Server, dissensus, start_server
from dissensus.warehouse.artefacts import snapshot_file

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")
BANNER = "Reading the API server's snapshot from"


def _pages() -> ModuleType:
    """tests/dashboards/test_pages.py: its demo warehouse and FAKE fit and run builders."""
    path = Path(__file__).resolve().parents[1] / "dashboards" / "test_pages.py"
    spec = importlib.util.spec_from_file_location("dashboards_test_pages_for_api", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


PAGES = _pages()


def row(i: int) -> dict:
    return {"comparison_id": f"api-{i}", "reviewer_id": f"api-reviewer-{i % 3}",
            "choice": "a" if i % 3 else "b", "prompt": f"Can I move appointment {i % 5}?",
            "response_a": f"Yes, to Friday ({i}).", "response_b": f"Please call us ({i}).",
            "category": "scheduling"}


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("info", "markdown", "caption", "warning", "error")
                    for e in at.get(kind))


def comparisons_metric(at: AppTest) -> int:
    return int(next(m.value for m in at.metric if m.label == "Comparisons").replace(",", ""))


def app(db: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DISSENSUS_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory, fake_fit) -> Iterator[Server]:
    """A demo warehouse with a FAKE fit and run, held by a server refreshing every 0.5 s."""
    db = PAGES.build_demo_warehouse(tmp_path_factory.mktemp("held") / "w.duckdb", n=800)
    PAGES.insert_fake_fit(db, fake_fit)
    PAGES.insert_fake_reward_run(db)
    server = start_server(db, "--snapshot-interval", "0.5")
    server.wait_for_snapshot()
    yield server
    server.stop()


@pytest.mark.parametrize("page", PAGES.PAGES)
def test_every_page_reads_the_snapshot_and_says_so(held: Server, page: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(held.db, monkeypatch)
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    banner = [e.value for e in at.info if BANNER in str(e.value)]
    assert banner and held.url in banner[0] and "refreshes after writes" in banner[0]
    assert len(at.get("vega_lite_chart")) + len(at.dataframe) > 0  # the data, not a message


def test_posts_reach_the_pages_and_the_read_commands(held: Server,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(held.db, monkeypatch)
    before = comparisons_metric(at)
    assert before == held.comparisons()
    assert f"read through the API server's snapshot `{snapshot_file(held.db)}`" in texts(at)

    posted = held.post_rows([row(i) for i in range(30)]).body
    assert posted["accepted"] == 30, posted
    held.wait_for_snapshot()
    at.run()  # a page load after the refresh: a new cache key, so the new counts
    assert not at.exception and comparisons_metric(at) == before + 30

    # the read commands fall back to the snapshot too, with a note on stderr (stdout stays JSON)
    read = dissensus(held.db, "reviewers", "--format", "json")
    assert read.returncode == 0, read.stderr
    assert BANNER in read.stderr and held.url in read.stderr
    reviewers = {r["reviewer_id"] for r in json.loads(read.stdout)}
    assert {"api-reviewer-0", "api-reviewer-1", "api-reviewer-2"} <= reviewers
    status = dissensus(held.db, "status")
    assert status.returncode == 0 and f"{before + 30:,}" in status.stdout
    # a command that writes is still sent to the server
    blocked = dissensus(held.db, "reindex")
    assert blocked.returncode == 2 and held.url in blocked.stderr


def test_without_the_server_the_pages_read_the_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "w.duckdb"
    server = start_server(db, "--snapshot-interval", "0.3")
    try:
        assert server.post_rows([row(i) for i in range(12)]).body["accepted"] == 12
        server.wait_for_snapshot()
        at = app(db, monkeypatch)
        assert BANNER in texts(at) and comparisons_metric(at) == 12
    finally:
        assert server.stop() == 0
    assert not snapshot_file(db).exists()  # removed with the server's note
    at.run()
    assert not at.exception and not at.error
    assert BANNER not in texts(at) and comparisons_metric(at) == 12
    assert "opened read-only" in texts(at)


def test_a_server_keeping_no_snapshot_is_named_on_the_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "w.duckdb"
    server = start_server(db, "--snapshot-interval", "0")
    try:
        assert server.post_rows([row(1)]).body["accepted"] == 1
        assert server.get("/healthz").body["snapshot"] is None
        at = app(db, monkeypatch)
        said = texts(at)
        assert "held by the dissensus API" in said and server.url in said
        assert "reload this page" in said and BANNER not in said
        assert not snapshot_file(db).exists()
    finally:
        server.stop()
