"""A real browser against `dissensus serve`: every page renders, a reviewer and a pair open.

Drives Debian's Chromium through Playwright (never `playwright install`). Full-page screenshots
land in ``$DISSENSUS_SCREENSHOTS`` (default: the test's tmp folder) for a person to look at.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
                 if Path(p).exists()), None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = [("", "Overview"), ("reviewer_audit", "Reviewer audit"),
         ("disagreement_explorer", "Disagreement explorer"), ("reward_models", "Reward models"),
         ("trade_offs", "Trade-offs"), ("deployment_drift", "Deployment drift")]
LAUNCH = "import sys; from dissensus.analytics.cli import app; app(sys.argv[1:])"


def _fixtures():
    path = Path(__file__).resolve().parents[1] / "dashboards" / "test_pages.py"
    spec = importlib.util.spec_from_file_location("dashboards_test_pages", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def fit_warehouse(tmp_path_factory: pytest.TempPathFactory, fake_fit) -> Path:
    """The demo world with a FAKE fit and a FAKE reward run (see tests/dashboards)."""
    helpers = _fixtures()
    path = helpers.build_demo_warehouse(tmp_path_factory.mktemp("browser") / "w.duckdb")
    helpers.insert_fake_fit(path, fake_fit)
    helpers.insert_fake_reward_run(path)
    drift = Path(__file__).resolve().parents[1] / "dashboards" / "test_drift_page.py"
    spec = importlib.util.spec_from_file_location("dashboards_test_drift_page", drift)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.add_scored_traffic(path)  # a real run scoring the demo traffic
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(fit_warehouse: Path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--db", str(fit_warehouse), "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=Path(__file__).resolve().parents[2])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("dissensus serve did not answer /_stcore/health: "
                    + (proc.stdout.read() if proc.stdout else ""))
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _idle(page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]',
                           timeout=30_000)
    page.wait_for_function(
        """() => { const a = document.querySelector('[data-testid="stApp"]');
            return a && a.getAttribute('data-test-script-state') === 'notRunning'
              && !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
              && !document.querySelector('[data-testid="stSkeleton"]'); }""",
        timeout=60_000)
    page.wait_for_timeout(400)


def _shoot(page, path: Path) -> None:
    height = page.evaluate(
        """() => Math.max(...['stMain', 'stAppViewContainer'].map(id => {
            const e = document.querySelector(`[data-testid="${id}"]`);
            return e ? e.scrollHeight : 0; }), document.body.scrollHeight)""")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 16000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)


def _choose(page, label: str, option_index: int = 1) -> str:
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.wait_for(timeout=20_000)
    options = page.locator('[role="option"]')
    # On a busy machine the first click can land before the widget is interactive: retry.
    for _ in range(4):
        box.locator('button[aria-haspopup="listbox"], [data-baseweb="select"]').first.click(
            timeout=10_000
        )
        try:
            options.first.wait_for(timeout=5_000)
            break
        except Exception:  # playwright's TimeoutError
            page.keyboard.press("Escape")
            _idle(page)
    options.first.wait_for(timeout=10_000)
    options.nth(min(option_index, options.count() - 1)).click()
    _idle(page)
    return box.locator("input").first.input_value()


def test_every_page_in_a_browser(server: str, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("no Chromium at /usr/lib/chromium/chromium or /usr/bin/chromium "
                    "(apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install playwright)")
    shots = Path(os.environ.get("DISSENSUS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # a deep link first, while the server is fresh: that is when a stray pages/ folder
        # would make Streamlit run the page file alone (no navigation, no sign-in)
        for slug, title in [PAGES[-1], *PAGES[:-1]]:
            page.goto(f"{server}/{slug}")
            _idle(page)
            assert page.get_by_role("heading", name=title).first.is_visible()
            assert page.locator('[data-testid="stException"]').count() == 0, title
            # a deep link shows the app's own navigation, not a listing of the source files
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
            assert all(t in nav for _, t in PAGES), nav
            assert "common" not in nav.lower(), nav
            if slug == "reviewer_audit":
                assert page.get_by_text("Report card").first.is_visible()
                chosen = _choose(page, "Reviewer", 2)
                assert page.get_by_text("Verdict").first.is_visible(), chosen
            if slug == "disagreement_explorer":
                _choose(page, "Pair", 1)
                assert page.get_by_text("Response 1").first.is_visible()
                assert page.get_by_text("Votes on this pair").count() >= 0
            if slug == "overview":
                assert page.get_by_text("Comparisons").first.is_visible()
            if slug == "deployment_drift":
                assert page.get_by_text("prescription_refill").first.is_visible()
                assert page.get_by_text("Audit sample").first.is_visible()
            _shoot(page, shots / f"{slug or 'overview'}.png")
            assert page.locator(".vega-embed, [data-testid='stDataFrame'], "
                                "[data-testid='stMetric']").count() > 0, title
        browser.close()
    assert not errors, errors
    for slug, _ in PAGES:
        assert (shots / f"{slug or 'overview'}.png").stat().st_size > 20_000
