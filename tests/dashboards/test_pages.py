"""Every dashboard page under streamlit.testing.v1.AppTest on small fixture warehouses.

The warehouse is the demo world (simulated, ingested) in tmp_path. The annotator model's tables are
filled by :func:`insert_fake_fit` and the reward tables by :func:`insert_fake_reward_run`: FAKE
outputs with the right shape, so that the pages are tested without fitting or training anything.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dissensus.analytics import tradeoffs as tr
from dissensus.warehouse.db import connect

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")
NOTE = "Agreement is near chance on many pairs (fake fit)."
PAGES = ["views/overview.py", "views/reviewer_audit.py", "views/disagreement_explorer.py",
         "views/reward_models.py", "views/trade_offs.py"]
FAKE_FIT = "fit-FAKE-for-tests"
FAKE_RUN = "multihead-FAKE-for-tests"


def build_demo_warehouse(path: Path, n: int = 1500) -> Path:
    """Simulate the demo world and ingest it into ``path``."""
    from dissensus.warehouse.demo import WorldConfig, simulate_world, write_world
    from dissensus.warehouse.ingest import ingest_file

    world = simulate_world(WorldConfig(n_comparisons=n, seed=1))
    files = write_world(world, path.parent / "world", fmt="jsonl")
    con = connect(path)
    try:
        ingest_file(con, files["comparisons"], fmt="jsonl")
    finally:
        con.close()
    return path


def insert_fake_fit(path: Path, fake_fit) -> str:
    """FAKE annotator-model output (two schools) in fits / reviewer_estimates / pair_estimates /
    comparison_weights: deterministic numbers of the right shape, not a fit. ``fake_fit``: the
    writer of the ``fake_fit`` fixture."""
    con = connect(path)
    try:
        rng = np.random.default_rng(0)
        reviewers = con.sql("SELECT reviewer_id, count(*) AS n FROM comparisons "
                            "GROUP BY ALL ORDER BY reviewer_id").pl()
        school = (np.arange(reviewers.height) % 3 == 0).astype(np.int32)
        rel = rng.uniform(0.55, 0.99, reviewers.height)
        est = reviewers.with_columns(
            fit_id=pl.lit(FAKE_FIT), reliability=rel, reliability_low=rel - 0.1,
            reliability_high=np.minimum(rel + 0.05, 1.0), position_bias=rng.normal(0, .3,
                                                                                   len(rel)),
            school=school, school_probability=0.95, flagged=rel < 0.6,
            flag_reason=pl.when(pl.lit(rel < 0.6)).then(pl.lit("fake: low reliability")),
            flag_kinds=pl.when(pl.lit(rel < 0.6)).then(pl.lit("lapses")),
            # a stream of its own, so the other fake figures stay as they were
            lapse_evidence=np.exp(np.random.default_rng(1).normal(-1.5, 1.2, len(rel))))
        con.register("est", est.to_arrow())
        pairs = con.sql("SELECT pair_id, any_value(prompt_id) AS prompt_id, count(*) AS n "
                        "FROM comparisons GROUP BY ALL ORDER BY pair_id").pl()
        shares = rng.dirichlet([1, 1, 1], pairs.height)
        verdicts = np.array(["noise", "pluralism", "ambiguous"])[shares.argmax(1)]
        verdicts[shares.max(1) < 0.45] = "clear"
        pe = pairs.with_columns(fit_id=pl.lit(FAKE_FIT), noise=shares[:, 0],
                                plural=shares[:, 1], amb=shares[:, 2], verdict=verdicts)
        con.register("pe", pe.to_arrow())
        fake_fit(
            con, FAKE_FIT, created_at=datetime(2026, 1, 1), method="fake", n_schools=2,
            n_comparisons=int(reviewers["n"].sum()), seconds=0.1,
            diagnostics=json.dumps({"school_weights": [0.67, 0.33], "warnings": [], "fake": True,
                                    "verdict_notes": [NOTE],
                                    "school_contrasts": [{"feature": "escalation|urgent_symptoms",
                                                          "weights": [-1.2, 1.2]}]}),
            config="{}",
            reviewers="""SELECT reviewer_id, n AS n_comparisons, reliability, reliability_low,
                reliability_high, position_bias, school, school_probability, flagged, flag_reason,
                flag_kinds, lapse_evidence FROM est""",
            pairs="""SELECT pe.pair_id, pe.prompt_id, t.body AS prompt, pe.n AS n_votes,
                0.5 AS p_first, pe.noise AS noise_share, pe.plural AS pluralism_share,
                pe.amb AS ambiguity_share, pe.verdict
                FROM pe LEFT JOIN texts t ON t.text_id = pe.prompt_id""",
            weights="""SELECT c.comparison_id, CASE WHEN e.flagged THEN 0.5 ELSE 1.0 END AS weight,
                CASE WHEN e.school = 0 THEN [0.95, 0.05] ELSE [0.05, 0.95] END AS school_weights
                FROM comparisons c JOIN est e USING (reviewer_id)""")
    finally:
        con.close()
    return FAKE_FIT


def insert_fake_reward_run(path: Path) -> str:
    """A FAKE multi-head reward run (metrics and reward_scores of the right shape)."""
    con = connect(path)
    try:
        metrics = {"accuracy_consensus": 0.8, "worst_school_accuracy": 0.7, "ece": 0.05,
                   "accuracy_per_school": {"school_0": 0.82, "school_1": 0.7},
                   "length_baseline_accuracy": 0.55, "n_labelled_pairs": 100,
                   "reliability": [{"low": 0.0, "high": 0.5, "n": 50, "mean_predicted": 0.3,
                                    "observed": 0.35},
                                   {"low": 0.5, "high": 1.0, "n": 50, "mean_predicted": 0.7,
                                    "observed": 0.66}]}
        con.execute("INSERT INTO reward_runs VALUES (?, ?, 'multihead', ?, 'fake', 'cpu', '{}', "
                    "?, NULL)", [FAKE_RUN, datetime(2026, 1, 2), FAKE_FIT, json.dumps(metrics)])
        con.execute("""INSERT INTO reward_scores
            SELECT ?, response_id, h.head,
                   CASE h.head WHEN 'school_0' THEN (list_contains(tags, 'appointment_offer'))::INT
                               WHEN 'school_1' THEN (list_contains(tags, 'escalation'))::INT
                               ELSE 0.0 END - (list_contains(tags, 'hallucination'))::INT
                   + hash(response_id) % 100 / 1000.0
            FROM responses, (VALUES ('school_0'), ('school_1'), ('consensus')) h(head)""",
                    [FAKE_RUN])
    finally:
        con.close()
    return FAKE_RUN


@pytest.fixture(scope="module")
def plain_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_warehouse(tmp_path_factory.mktemp("plain") / "w.duckdb")


@pytest.fixture(scope="module")
def fit_warehouse(tmp_path_factory: pytest.TempPathFactory, fake_fit) -> Path:
    path = build_demo_warehouse(tmp_path_factory.mktemp("fit") / "w.duckdb")
    insert_fake_fit(path, fake_fit)
    insert_fake_reward_run(path)
    return path


def test_what_the_fit_cannot_support_is_said_on_the_pages(fit_warehouse: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for page in PAGES[:2]:
        assert NOTE in texts(run_page(fit_warehouse, page, monkeypatch))
    # and the audit's own words on reviewers whose votes cannot tell careful from lapsing
    shown = texts(run_page(fit_warehouse, PAGES[1], monkeypatch))
    assert "reviewers: their votes favour neither careful nor lapses clearly" in shown


def run_page(db: Path, page: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DISSENSUS_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("info", "markdown", "caption", "warning", "error")
                    for e in at.get(kind))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_a_fit(fit_warehouse: Path, page: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_page(fit_warehouse, page, monkeypatch)
    assert at.title[0].value
    assert len(at.get("vega_lite_chart")) + len(at.dataframe) > 0


def test_overview_counts_equal_the_warehouse(fit_warehouse: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from dissensus.warehouse import queries

    con = connect(fit_warehouse, read_only=True)
    c = queries.counts(con)
    con.close()
    m = metrics(run_page(fit_warehouse, PAGES[0], monkeypatch))
    assert m["Comparisons"] == f"{c.comparisons:,}"
    assert m["Reviewers"] == f"{c.reviewers:,}"
    assert m["Pairs"] == f"{c.pairs:,}"
    assert m["Method"] == "fake" and m["Schools"] == "2"


def test_reviewer_audit_figures_equal_the_audit(fit_warehouse: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from dissensus.analytics.audit import reviewer_audit

    con = connect(fit_warehouse, read_only=True)
    audit = reviewer_audit(con)
    con.close()
    at = run_page(fit_warehouse, PAGES[1], monkeypatch)
    m = metrics(at)
    assert m["Reviewers"] == f"{audit.height:,}"
    assert m["Flagged"] == f"{int(audit['flagged'].sum()):,}"
    top = audit.row(0, named=True)
    assert f"Verdict\n\n**{top['verdict']}**" in texts(at)
    assert m["Reliability"] == f"{top['reliability']:.2f}"
    other = audit["reviewer_id"][3]
    at.selectbox(key="reviewer").select(other).run()
    assert not at.exception
    assert f"**{audit.row(3, named=True)['verdict']}**" in texts(at)


def test_pseudonymised_ids_hide_the_real_ones(fit_warehouse: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_page(fit_warehouse, PAGES[1], monkeypatch)
    at.session_state["pseudonymise"] = True
    at.run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert all(str(v).startswith("reviewer-") for v in shown["who"])
    assert "rev-" not in " ".join(map(str, shown["who"]))


def test_disagreement_explorer_opens_a_pair(fit_warehouse: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_page(fit_warehouse, PAGES[2], monkeypatch)
    box = at.selectbox(key="pair")
    at = box.select(box.options and box.value).run()
    assert not at.exception
    assert "Verdict:" in texts(at) and "Response 1" in texts(at)
    # the fit's own reading of where the schools differ, from its diagnostics
    contrasts = [df.value for df in at.dataframe if "feature" in df.value.columns]
    assert contrasts and contrasts[0]["feature"].tolist() == ["escalation|urgent_symptoms"]
    assert contrasts[0]["school 1"].tolist() == [1.2]


def test_trade_offs_figures_equal_the_analytics(fit_warehouse: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    con = connect(fit_warehouse, read_only=True)
    votes = tr.school_votes(con, FAKE_FIT)
    responses = tr.responses_frame(con)
    scores = pl.concat([tr.reviewer_scores(votes), tr.reward_run_scores(con, FAKE_RUN)])
    con.close()
    prevalence = tr.school_prevalence(votes)
    weights = {s: round(w, 2) for s, w in prevalence.items()}
    expected = tr.what_if(scores, votes, responses, weights)
    at = run_page(fit_warehouse, PAGES[4], monkeypatch)
    m = metrics(at)
    assert m["Prompts whose preferred reply changes"] == f"{expected.n_changed:,}"
    after = expected.summary.filter((pl.col("source") == "what-if")
                                    & (pl.col("category") == "(all)"))["refusal_rate"][0]
    assert m["Refusal rate"] == f"{after:.1%}"
    at.slider(key="weight-school 0").set_value(0.0).run()
    assert not at.exception
    zero = tr.what_if(scores, votes, responses, {"school 0": 0.0, "school 1": weights["school 1"]})
    assert metrics(at)["Prompts whose preferred reply changes"] == f"{zero.n_changed:,}"


@pytest.mark.parametrize("page", PAGES)
def test_without_a_fit_pages_say_so(plain_warehouse: Path, page: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_page(plain_warehouse, page, monkeypatch)
    said = texts(at)
    if page.endswith(("overview.py", "reviewer_audit.py", "disagreement_explorer.py",
                      "trade_offs.py")):
        assert "No annotator fit yet" in said
    if page.endswith("reward_models.py"):
        assert "No reward runs yet" in said


@pytest.mark.parametrize("page", PAGES)
def test_empty_and_missing_warehouses_say_what_to_do(tmp_path: Path, page: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.duckdb"
    connect(empty).close()
    said = texts(run_page(empty, page, monkeypatch))
    assert "no comparisons yet" in said
    said = texts(run_page(tmp_path / "nothing-here.duckdb", page, monkeypatch))
    assert "There is no warehouse" in said and "dissensus demo" in said


def test_reward_page_warns_when_the_schools_show_on_no_pair(
        fit_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    warning = "calls no pair pluralism, so no pair shows the split"
    assert warning not in texts(run_page(fit_warehouse, PAGES[3], monkeypatch))
    unseen = tmp_path / "unseen.duckdb"
    shutil.copy(fit_warehouse, unseen)
    con = connect(unseen)
    try:
        con.execute("UPDATE fits SET diagnostics = json_merge_patch(diagnostics, "
                    "'{\"schools_unseen\": true}') WHERE fit_id = ?", [FAKE_FIT])
    finally:
        con.close()
    shown = texts(run_page(unseen, PAGES[3], monkeypatch))
    assert f"Fit `{FAKE_FIT}` chose schools but {warning}" in shown
    assert f"`{FAKE_RUN}`" in shown
