"""The Deployment drift page under AppTest, on a warehouse with really scored traffic.

The reward run is trained on the FAKE fit of test_pages.py with the hashing encoder (fast);
the traffic is the demo's (a baseline period, then drift), ingested and scored for real.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")
PAGE = "views/deployment_drift.py"


def _pages_helpers():
    path = Path(__file__).resolve().parent / "test_pages.py"
    spec = importlib.util.spec_from_file_location("dashboards_test_pages_for_drift", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def add_scored_traffic(path: Path) -> str:
    """Train a small multi-head run (hashing encoder) on the warehouse's fit, ingest the demo
    traffic (drift from week 3 of 4) and score it; the run id."""
    from dissensus.analytics.jobs.reward import train_run
    from dissensus.analytics.jobs.traffic import score_traffic
    from dissensus.models.reward.config import make_config
    from dissensus.warehouse.db import connect
    from dissensus.warehouse.demo.traffic import TrafficConfig, simulate_traffic, write_traffic
    from dissensus.warehouse.traffic import ingest_traffic_file

    rows, truth = simulate_traffic(TrafficConfig(turns_per_week=120, n_weeks=4,
                                                 drift_from_week=3, seed=5))
    files = write_traffic(rows, truth, path.parent / "traffic")
    con = connect(path)
    try:
        run = train_run(con, "multihead", None, make_config(
            "multihead", encoder="hashing", epochs=8, patience=3, hidden=32),
            log=lambda _: None)
        ingest_traffic_file(con, files["traffic"])
        score_traffic(con, run, log=lambda _: None)
    finally:
        con.close()
    return run


@pytest.fixture(scope="module")
def drift_warehouse(tmp_path_factory: pytest.TempPathFactory, fake_fit) -> Path:
    helpers = _pages_helpers()
    path = helpers.build_demo_warehouse(tmp_path_factory.mktemp("drift") / "w.duckdb")
    helpers.insert_fake_fit(path, fake_fit)
    add_scored_traffic(path)
    return path


def _run(db: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DISSENSUS_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=90).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_the_page_shows_the_alarms_charts_and_the_audit_sample(
        drift_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _run(drift_warehouse, monkeypatch)
    assert at.title[0].value == "Deployment drift"
    alarms = [e.value for e in at.error]
    assert any("prescription_refill" in a for a in alarms), alarms
    assert len(at.get("vega_lite_chart")) >= 2
    assert len(at.dataframe) == 2
    audit = at.dataframe[1].value
    assert {"audit_reason", "prompt", "response"} <= set(audit.columns)
    assert len(audit) > 0
    # filtering to the categories that never drifted leaves no alarm on the page
    at.multiselect(key="drift_categories").set_value(["billing", "cancellation"]).run()
    assert not at.exception
    assert not at.error
    assert at.success


def test_the_page_says_what_to_do_without_scored_traffic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _pages_helpers().build_demo_warehouse(tmp_path / "w.duckdb", n=300)
    at = _run(path, monkeypatch)
    assert "dissensus score RUN --traffic" in " ".join(i.value for i in at.info)
