"""The reviewer audit: verdicts, the model's schools, real data with gold, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from scipy.stats import spearmanr
from typer.testing import CliRunner

from dissensus.analytics import audit
from dissensus.analytics.agreement import leave_one_out_agreement, model_free_reliability
from dissensus.warehouse.db import connect
from dissensus.warehouse.errors import EmptyDataError
from dissensus.warehouse.ingest import ingest_file

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def crowd(warehouse, vote):
    """Six careful majority reviewers, two careful minority ones (they flip items 0-19), one
    rushed reviewer (fast, alternates answers). Replies 'reply A/B to <item>', the order shown
    alternating, 40 s a judgment (4 s for the rushed one)."""
    rows = []
    for i in range(40):
        item = {"response_a": f"reply A to {i}", "response_b": f"reply B to {i}",
                "shown_first": "a" if i % 2 else "b", "seconds_spent": 40.0}
        for j in range(6):
            rows.append(vote(f"major{j}", i, "a", **item))
        for j in range(2):
            rows.append(vote(f"minor{j}", i, "b" if i < 20 else "a", **item))
        rows.append(vote("rushed", i, "a" if i % 3 == 0 else "b", **{**item, "seconds_spent": 4.0}))
    return warehouse(rows)


def verdicts(frame) -> dict[str, str]:
    return dict(zip(frame["reviewer_id"], frame["verdict"], strict=True))


def test_audit_with_model_fit(warehouse, vote, fake_fit) -> None:
    con = crowd(warehouse, vote)
    schools = {**{f"major{j}": 0 for j in range(6)}, "minor0": 1, "minor1": 1, "rushed": 0}
    rel = [0.55 if rid == "rushed" else 0.97 for rid in schools]
    fake_fit(con, "fit-1", created_at=datetime(2026, 2, 1), method="test", n_schools=2,
             n_comparisons=360, seconds=1.0, config='{"interval_mass": 0.8}',
             reviewers=pl.DataFrame({
                 "reviewer_id": list(schools), "n_comparisons": 40, "reliability": rel,
                 "reliability_low": [r - 0.05 for r in rel],
                 "reliability_high": [r + 0.02 for r in rel], "position_bias": 0.0,
                 "school": list(schools.values()), "school_probability": 0.95, "flagged": False}))
    out = audit.reviewer_audit(con)
    v = verdicts(out)
    assert v["minor0"] == v["minor1"] == "minority view, consistent"
    assert v["rushed"] == "fast and inconsistent"
    assert v["major0"] == "ok"
    assert out["rank"][0] == 1 and out["reviewer_id"][0] == "rushed"
    assert not out.filter(reviewer_id="minor0")["flagged"][0]
    assert out["reliability_source"][0].startswith("annotator model")
    # the fit's intervals are its own (interval_mass), not the audit's checks' level
    assert out["reliability_source"][0].endswith(", 80% intervals)")


def test_a_minority_school_the_fit_is_unsure_of_is_no_verdict(warehouse, vote,
                                                                fake_fit) -> None:
    con = crowd(warehouse, vote)
    schools = {**{f"major{j}": 0 for j in range(6)}, "minor0": 1, "minor1": 1, "rushed": 0}
    fake_fit(con, "fit-u", created_at=datetime(2026, 2, 1), method="test", n_schools=2,
             n_comparisons=360, seconds=1.0, reviewers=pl.DataFrame({
                 "reviewer_id": list(schools), "n_comparisons": 40,
                 "reliability": 0.97, "reliability_low": 0.92, "reliability_high": 0.99,
                 "position_bias": 0.0, "school": list(schools.values()),
                 "school_probability": [0.6 if r == "minor1" else 0.95 for r in schools],
                 "flagged": False}))
    out = audit.reviewer_audit(con)
    v = verdicts(out)
    assert v["minor0"] == "minority view, consistent"
    assert v["minor1"] != "minority view, consistent"
    assert not out.filter(reviewer_id="minor1")["flagged"][0]
    reasons = out.filter(reviewer_id="minor1")["reasons"][0]
    assert "school 1 uncertain (p=0.6" in reasons and "do not settle" in reasons


def test_no_minority_view_where_the_fit_calls_no_pair_pluralism(warehouse, vote,
                                                                 fake_fit) -> None:
    # two schools chosen, yet no pair shows them: a school placed with p=0.95 is still no
    # view the votes show, so nobody holds "a minority view"
    con = crowd(warehouse, vote)
    schools = {**{f"major{j}": 0 for j in range(6)}, "minor0": 1, "minor1": 1, "rushed": 0}
    fake_fit(con, "fit-n", created_at=datetime(2026, 2, 2), method="test", n_schools=2,
             n_comparisons=360, seconds=1.0,
             diagnostics=json.dumps({"schools_unseen": True, "verdict_notes": ["no pair"]}),
             reviewers=pl.DataFrame({
                 "reviewer_id": list(schools), "n_comparisons": 40, "reliability": 0.97,
                 "reliability_low": 0.92, "reliability_high": 0.99, "position_bias": 0.0,
                 "school": list(schools.values()), "school_probability": 0.95,
                 "flagged": False}))
    out = audit.reviewer_audit(con)
    v = verdicts(out)
    assert "minority view, consistent" not in v.values()
    assert v["minor0"] == v["minor1"] == "ok"
    reasons = out.filter(reviewer_id="minor0")["reasons"][0]
    assert "school 1 unproven (p=0.95): the fit calls no pair pluralism" in reasons
    assert audit.fit_notes(con) == ["no pair"]


def test_ok_needs_votes_that_favour_careful(tmp_path: Path, warehouse, vote, fake_fit) -> None:
    """'ok' is a verdict the reviewer's own votes must support: where the fit's lapse evidence
    favours neither side clearly, the audit says it cannot tell, in words, and flags nobody."""
    con = crowd(warehouse, vote)
    schools = {**{f"major{j}": 0 for j in range(6)}, "minor0": 1, "minor1": 1, "rushed": 0}
    evidence = {"major0": 1.8, "major1": 0.5, "major2": 0.01, "major3": None, "minor1": 1.5}
    fake_fit(con, "fit-e", created_at=datetime(2026, 2, 3), method="test", n_schools=2,
             n_comparisons=360, seconds=1.0, reviewers=pl.DataFrame({
                 "reviewer_id": list(schools), "n_comparisons": 40, "reliability": 0.95,
                 "reliability_low": 0.85, "reliability_high": 0.99, "position_bias": 0.0,
                 "school": list(schools.values()), "school_probability": 0.95,
                 "flagged": False,
                 "lapse_evidence": [evidence.get(r, 0.05) for r in schools]}))
    out = audit.reviewer_audit(con)
    v = verdicts(out)
    assert v["major0"] == v["major1"] == audit.UNSETTLED == "cannot tell from their votes"
    reasons = dict(zip(out["reviewer_id"], out["reasons"], strict=True))
    assert ("favour lapses 1.8 to 1 over careful, and their reliability interval (0.85–0.99) "
            "still reaches careful rates: too little to flag" in reasons["major0"])
    assert "favour careful only 2.0 to 1" in reasons["major1"]
    assert "mostly the pool's" in reasons["major1"]
    assert v["major2"] == "ok"
    assert v["major3"] == "ok"  # a fit without the evidence keeps the older verdict
    assert v["minor0"] == "minority view, consistent"
    # a minority school is no warrant of care: minor1's votes do not settle it either
    assert v["minor1"] == audit.UNSETTLED
    assert "school 1 (p=0.95): votes with a minority view" in reasons["minor1"]
    assert not out.filter(pl.col("verdict") == audit.UNSETTLED)["flagged"].any()
    note = audit.unsettled_note(out)
    assert note is not None and note.startswith("3 of 9 reviewers")
    figures = audit.report_card(con, "major0").figures
    evidence = figures.filter(pl.col("figure") == "lapse evidence (Bayes factor)")
    assert evidence["value"][0] == pytest.approx(1.8)
    # and `dissensus reviewers` says it under the table
    from dissensus.analytics.cli import common
    from dissensus.analytics.cli.audit import register

    con.close()
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        common.State.db = tmp_path / "w.duckdb"

    register(app)
    res = CliRunner().invoke(app, ["reviewers"])
    assert res.exit_code == 0, res.output
    assert "3 of 9 reviewers: their votes favour neither" in " ".join(res.output.split())


def test_the_audit_and_the_fit_place_reviewers_at_the_same_bar() -> None:
    # two homes, kept apart so the audit does not import the model (0.6 s); this keeps them equal
    from dissensus.analytics.audit_config import AuditConfig
    from dissensus.models.annotator.notes import PLACED_PROBABILITY

    assert AuditConfig().min_school_probability == PLACED_PROBABILITY


def test_model_lapses_are_the_fits_own_flags_and_its_notes_are_read(warehouse, vote,
                                                                     fake_fit) -> None:
    con = crowd(warehouse, vote)
    schools = {**{f"major{j}": 0 for j in range(6)}, "minor0": 1, "minor1": 1, "rushed": 0}
    # major0 has a low reliability the fit did not flag (no evidence against the pool), major1
    # a flag with the fit's reason
    rel = {"major0": 0.6, "major1": 0.6}
    note = "Agreement is near chance on many pairs (test)."
    fake_fit(con, "fit-2", created_at=datetime(2026, 2, 2), method="test", n_schools=2,
             n_comparisons=360, seconds=1.0,
             diagnostics=json.dumps({"verdict_notes": [note]}),
             reviewers=pl.DataFrame({
                 "reviewer_id": list(schools), "n_comparisons": 40,
                 "reliability": [rel.get(r, 0.97) for r in schools],
                 "reliability_low": [rel.get(r, 0.97) - 0.1 for r in schools],
                 "reliability_high": [rel.get(r, 0.97) + 0.02 for r in schools],
                 "position_bias": 0.0, "school": list(schools.values()),
                 "school_probability": 0.95, "flagged": [r in ("major1", "major3")
                                                         for r in schools],
                 "flag_reason": ["lapse rate ~40% (test)" if r == "major1" else
                                 "votes reversed: against a clear consensus on 30 of 36 votes"
                                 if r == "major3" else None for r in schools],
                 "flag_kinds": ["lapses" if r == "major1" else "reversed" if r == "major3"
                                else None for r in schools],
                 "lean": ["departures from a clear consensus favour the longer reply in 9 of 10"
                          if r in ("major1", "major2") else None for r in schools]}))
    out = audit.reviewer_audit(con)
    v = verdicts(out)
    assert v["major0"] == "ok"
    assert v["major1"] == "unreliable: frequent lapses"
    assert "lapse rate ~40% (test)" in out.filter(reviewer_id="major1")["reasons"][0]
    # reversed votes are no lapses: a verdict of their own, with the fit's counts
    assert v["major3"] == "reversed votes"
    assert "30 of 36 votes" in out.filter(reviewer_id="major3")["reasons"][0]
    # a careful reviewer with a consistent lean: a taste, reported with its counts, not flagged
    assert v["major2"] == "consistent lean (a taste, not lapses)"
    assert "longer reply in 9 of 10" in out.filter(reviewer_id="major2")["reasons"][0]
    assert not out.filter(reviewer_id="major2")["flagged"][0]
    assert audit.fit_notes(con) == [note]


def test_audit_without_fit_and_report_card(warehouse, vote) -> None:
    con = crowd(warehouse, vote)
    out = audit.reviewer_audit(con)
    v = verdicts(out)
    assert v["rushed"] == "fast and inconsistent"
    assert "reliability" in out.filter(reviewer_id="rushed")["reasons"][0]
    assert out["reliability_source"][0].startswith("model-free")
    card = audit.report_card(con, "minor0")
    assert card.disagreements.height == 20
    first = card.disagreements.row(0, named=True)
    assert first["prompt"].startswith("prompt") and first["response_1"].startswith("reply")
    assert set(card.figures["figure"]) >= {"reliability", "gold accuracy", "tie rate"}
    with pytest.raises(EmptyDataError, match="no reviewer 'nobody'"):
        audit.report_card(con, "nobody")


def test_config_is_typed_and_used(warehouse, vote) -> None:
    with pytest.raises(ValueError):
        audit.AuditConfig(fast_ratio=3.0)
    assert audit.AuditConfig.model_fields["fast_ratio"].description
    con = crowd(warehouse, vote)
    out = audit.reviewer_audit(con, audit.AuditConfig(min_votes=1000))
    assert set(out["verdict"]) == {"too few votes"}


def test_cli_reviewers_and_reviewer(tmp_path: Path, warehouse, vote) -> None:
    from dissensus.analytics.cli import common
    from dissensus.analytics.cli.audit import register

    crowd(warehouse, vote).close()
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        common.State.db = tmp_path / "w.duckdb"

    register(app)
    runner = CliRunner()
    res = runner.invoke(app, ["reviewers", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert rows[0]["reviewer_id"] == "rushed" and rows[0]["verdict"] == "fast and inconsistent"
    res = runner.invoke(app, ["reviewers", "--format", "csv", "--flagged"])
    assert res.exit_code == 0 and res.output.startswith("rank,reviewer_id,verdict")
    res = runner.invoke(app, ["reviewers", "--format", "xml"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["reviewer", "minor0"])
    assert res.exit_code == 0 and "reply A to" in res.output and "figures" in res.output
    assert runner.invoke(app, ["reviewer", "nobody"]).exit_code == 2


@pytest.mark.parametrize(("folder", "fmt"), [("snow2008_mturk", "snow2008-rte"),
                                             ("bluebirds", "bluebirds")])
def test_reliability_tracks_gold_better_than_majority(tmp_path: Path, folder: str,
                                                      fmt: str) -> None:
    if not (DATA / folder).is_dir():
        pytest.skip(f"{DATA / folder} is not here (shared data folder absent)")
    con = connect(tmp_path / "real.duckdb")
    ingest_file(con, DATA / folder, fmt=fmt)
    acc = con.sql("SELECT reviewer_id, avg((outcome = gold_outcome)::DOUBLE) AS accuracy "
                  "FROM comparisons WHERE gold_outcome IS NOT NULL GROUP BY ALL").pl()
    rel = model_free_reliability(con).join(acc, on="reviewer_id")
    maj = leave_one_out_agreement(con).join(acc, on="reviewer_id")
    ours = spearmanr(rel["reliability"], rel["accuracy"])[0]
    baseline = spearmanr(maj["majority_agreement"], maj["accuracy"])[0]
    assert ours > baseline, (ours, baseline)
    assert ours > 0.75


def test_the_temporal_set_one_label_spammers_are_lapses_not_a_school(tmp_path: Path) -> None:
    # Snow et al.'s temporal labels: five busy workers click nearly one label whatever the item
    # (gold accuracy 0.44-0.60, 40% of the votes); held to lapse rates below one half they
    # formed a school of their own (K = 2) and were reliability ~0.5
    from dissensus.analytics.jobs.fit import run_fit
    from dissensus.models.annotator import AnnotatorConfig

    source = DATA / "snow2008_mturk" / "temp.standardized.tsv"
    if not source.is_file():
        pytest.skip(f"{source} is not here (shared data folder absent)")
    con = connect(tmp_path / "temp.duckdb")
    ingest_file(con, source)
    outcome = run_fit(con, AnnotatorConfig())
    assert outcome.model.fit_summary_["n_schools"] == 1
    out = audit.reviewer_audit(con)
    spammers = out.filter(pl.col("gold_accuracy") < 0.62, pl.col("n_votes") >= 100)
    assert spammers.height == 5 and spammers["flagged"].all()
    assert spammers["reliability"].max() < 0.2, spammers
    flagged = out.filter(pl.col("flagged"))
    rest = out.filter(~pl.col("flagged"))
    assert flagged.height <= 10 and "unreliable: frequent lapses" not in flagged["verdict"]
    assert flagged["gold_accuracy"].mean() < 0.65 < 0.85 < rest["gold_accuracy"].mean()
    assert spearmanr(out["reliability"], out["gold_accuracy"])[0] > 0.6


def test_a_warehouse_of_an_older_schema_is_audited_read_only(tmp_path: Path, warehouse, vote,
                                                              fake_fit, schema_before) -> None:
    """A warehouse written before the fits stored lapse evidence and agreement intervals, opened
    read-only (so not migrated), still gets its audit: the newer columns read as NULL."""
    import duckdb

    con = crowd(warehouse, vote)
    schools = {**{f"major{j}": 0 for j in range(6)}, "minor0": 1, "minor1": 1, "rushed": 0}
    fake_fit(con, "fit-old", created_at=datetime(2026, 2, 4), method="test", n_schools=2,
             n_comparisons=360, seconds=1.0, reviewers=pl.DataFrame({
                 "reviewer_id": list(schools), "n_comparisons": 40, "reliability": 0.95,
                 "reliability_low": 0.85, "reliability_high": 0.99, "position_bias": 0.0,
                 "school": list(schools.values()), "school_probability": 0.95,
                 "flagged": False}))
    schema_before(con, 10)
    con.close()
    old = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        out = audit.reviewer_audit(old)
    finally:
        old.close()
    v = verdicts(out)
    assert v["major0"] == "ok" and v["minor0"] == "minority view, consistent"
    assert out["agreement_low"].is_null().all() and out["model_lapse_evidence"].is_null().all()


def label_task(warehouse, vote, yes: str, no: str, raters: int, items: int,
               says_yes: Callable[[int, int], bool]):
    """A label task in a fresh warehouse: rater ``r`` answers item ``j`` with ``yes`` (reply a)
    where ``says_yes(r, j)``, else ``no``; no display order. Called rater by rater, item by
    item, so a caller's random draws come in that order."""
    rows = [vote(f"r{r}", j, "a" if says_yes(r, j) else "b", response_a=yes, response_b=no,
                 shown_first=None, comparison_id=f"r{r}-{j}")
            for r in range(raters) for j in range(items)]
    return warehouse(rows)


def test_a_label_task_names_its_labels_and_finds_no_schools_in_them(warehouse, vote) -> None:
    # a label task in the warehouse: each item's two replies are the same two label texts
    from dissensus.analytics.jobs.fit import run_fit
    from dissensus.models.annotator import AnnotatorConfig

    yes, no = "The hypothesis follows from the text.", "It does not follow."
    rng = np.random.default_rng(0)
    gold_yes = rng.random(160) < 0.5

    def says_yes(r: int, j: int) -> bool:
        answer = bool(gold_yes[j] ^ (rng.random() < 0.08))
        return answer or (r < 4 and rng.random() < 0.6)  # r0-r3 over-call "yes"

    con = label_task(warehouse, vote, yes, no, 10, 160, says_yes)
    # features "auto": a label task's replies are label texts, not content to find schools in
    outcome = run_fit(con, AnnotatorConfig(n_schools=1, max_iter=60))
    warnings = outcome.model.fit_summary_["diagnostics"]["warnings"]
    assert any(w.startswith("reply content not used: a label task") for w in warnings)
    assert "content" not in outcome.model.fit_summary_["diagnostics"]
    # asked for explicitly, content is used, with a warning that says what it does there
    forced = run_fit(con, AnnotatorConfig(n_schools=1, max_iter=20, features="embeddings"))
    forced_warnings = forced.model.fit_summary_["diagnostics"]["warnings"]
    assert any(w.startswith("reply content used in a label task") for w in forced_warnings)
    assert forced.model.fit_summary_["diagnostics"]["content"]["replies"] == 320
    said = con.execute("SELECT reviewer_id, flag_reason, lean FROM reviewer_estimates "
                       "WHERE reviewer_id IN ('r0', 'r1', 'r2', 'r3')").fetchall()
    text = " ".join(str(part) for row in said for part in row[1:] if part)
    assert f'the label "{yes}"' in text, said
    assert "label text" not in text  # the generic name is gone wherever the label is known


def test_a_lean_toward_one_label_is_its_own_verdict_not_lapses(warehouse, vote) -> None:
    # a label task where everyone is careful, but r0-r3 read every item 2 logits toward "yes"
    from scipy.special import expit

    from dissensus.analytics.jobs.fit import fit_report_lines, run_fit
    from dissensus.models.annotator import AnnotatorConfig

    yes, no = "Yes, the first event came first.", "No, it came after."
    rng = np.random.default_rng(1)
    margin = rng.normal(0.0, 2.0, 200)
    con = label_task(warehouse, vote, yes, no, 10, 200, lambda r, j: bool(
        rng.random() < expit(margin[j] + (2.0 if r < 4 else 0.0))))
    outcome = run_fit(con, AnnotatorConfig(n_schools=1, max_iter=60))
    assert ("  reviewers flagged: 4 of 10 (4 for a lean toward one label alone)"
            in fit_report_lines(outcome))
    out = audit.reviewer_audit(con)
    leaning = out.filter(pl.col("reviewer_id").is_in(["r0", "r1", "r2", "r3"]))
    assert leaning["flagged"].all(), leaning
    assert set(leaning["verdict"]) == {"leans toward one label"}, leaning["reasons"].to_list()
    assert all(f'favours the label "{yes}"' in reasons for reasons in leaning["reasons"])
    others = out.filter(~pl.col("reviewer_id").is_in(["r0", "r1", "r2", "r3"]))
    assert not others["flagged"].any(), others
    # four of ten lean: the fit says what a lean is, since the votes cannot say it is a fault
    notes = audit.audit_notes(con, out)
    assert any("4 of 10 reviewers lean credibly toward one label" in n
               and "a matter of judgement" in n for n in notes), notes


def test_one_label_on_every_item_is_not_called_unreliable_without_gold(warehouse, vote) -> None:
    """A rater who picks one label on nearly every item may click it whatever the item or draw
    the line for it far from everyone else: without gold the votes cannot tell, so the verdict
    says what they did, not that they are unreliable; a rater who clicks at random is."""
    from scipy.special import expit

    from dissensus.analytics.jobs.fit import fit_report_lines, run_fit
    from dissensus.models.annotator import AnnotatorConfig

    yes, no = "Yes, the comment is offensive.", "No, it is not."
    rng = np.random.default_rng(3)
    margin = rng.normal(0.0, 2.5, 150)
    # r0, r1: "yes" whatever the item, or nearly; r2: a coin flip on every item
    chance = {0: 0.97, 1: 0.97, 2: 0.5}
    con = label_task(warehouse, vote, yes, no, 14, 150, lambda r, j: bool(
        rng.random() < chance.get(r, expit(margin[j]))))
    outcome = run_fit(con, AnnotatorConfig(n_schools=1, max_iter=60))
    assert "  reviewers flagged: 3 of 14 (3 for lapses)" in fit_report_lines(outcome)
    stored = dict(con.execute("SELECT reviewer_id, flag_kinds FROM reviewer_estimates "
                              "WHERE reviewer_id IN ('r0', 'r1', 'r2')").fetchall())
    assert stored == {"r0": "lapses", "r1": "lapses", "r2": "lapses"}, stored
    out = audit.reviewer_audit(con)
    # the audit leaves the connection free for the caller's next query
    assert con.sql("SELECT count(*) FROM reviewer_estimates").fetchall()[0][0] == 14
    v = verdicts(out)
    assert v["r0"] == v["r1"] == "one label on nearly every item", out.head(4)
    assert out.filter(reviewer_id="r0")["flagged"][0]
    reasons = out.filter(reviewer_id="r0")["reasons"][0]
    assert f'picks the label "{yes}" on' in reasons and "gold questions" in reasons, reasons
    assert v["r2"] == "unreliable: frequent lapses"
    careful = out.filter(~pl.col("reviewer_id").is_in(["r0", "r1", "r2"]))
    assert not careful["flagged"].any(), careful


def test_a_minority_view_from_votes_alone_says_so(warehouse, vote, fake_fit) -> None:
    """A minority view that nothing outside the votes confirms is still the verdict, with the
    caveat in the reasons (the gold record where there is one) and a note; gold answers whose
    interval clears the bar take the caveat away, a few mixed ones do not."""
    schools = {**{f"major{j}": 0 for j in range(6)}, "minor0": 1, "minor1": 1, "rushed": 0}
    estimates = pl.DataFrame({
        "reviewer_id": list(schools), "n_comparisons": 40, "reliability": 0.97,
        "reliability_low": 0.92, "reliability_high": 0.99, "position_bias": 0.0,
        "school": list(schools.values()), "school_probability": 0.95, "flagged": False})

    def with_gold(reviewer, item, choice, **fields):
        # minor0 answers 40 gold questions right; minor1 7 of 8: 88%, but too few to show care
        other = {"a": "b", "b": "a"}[choice]
        gold = ({"gold_choice": choice} if reviewer == "minor0" else
                {"gold_choice": choice if item < 7 else other}
                if reviewer == "minor1" and item < 8 else {})
        return vote(reviewer, item, choice, **fields, **gold)

    for name, make, alone, mixed in (("plain", vote, {"minor0", "minor1"}, set()),
                                     ("gold", with_gold, set(), {"minor1"})):
        con = crowd(lambda rows, name=name: warehouse(rows, name=name), make)
        fake_fit(con, f"fit-{name}", created_at=datetime(2026, 2, 4), method="test",
                 n_schools=2, n_comparisons=360, seconds=1.0, reviewers=estimates)
        out = audit.reviewer_audit(con)
        reasons = dict(zip(out["reviewer_id"], out["reasons"], strict=True))
        assert verdicts(out)["minor0"] == verdicts(out)["minor1"] == audit.MINORITY_VIEW
        assert {r for r in schools if "from their votes alone" in reasons[r]} == alone
        assert {r for r in schools if "7 of 8 gold answers right: too few or too mixed to "
                "show care" in reasons[r]} == mixed
        note = audit.minority_view_note(out)
        assert note is not None and note.startswith(
            f"{len(alone | mixed)} reviewer(s) are called 'minority view")
        assert note in audit.audit_notes(con, out)


def test_ties_overused_without_a_fit_say_what_would_tell_taste_from_carelessness(
        warehouse, vote) -> None:
    """Eight reviewers split on 30 close pairs (A or B, 'tie' on one vote in eight) and pick A
    on 30 clear ones. Two say 'tie' on 24 of the close pairs and pick A on the clear ones:
    'taster' says it on the same pairs again when 20 are repeated a week later, 'quiet' has no
    repeats. Without a fit the votes cannot tell a tie taste from careless ties: 'quiet' keeps
    the flag, with words that say so and what would settle it; repeats that come back the same
    show 'taster' cares."""
    def other(j: int, i: int) -> str:
        if i >= 30:
            return "a"
        return "tie" if (i + j) % 8 == 0 else ("a" if (i + j) % 2 else "b")

    def shown(i: int) -> str:
        return "ab"[i % 2]

    rows = [vote(f"o{j}", i, other(j, i), day=1, shown_first=shown(i))
            for j in range(8) for i in range(60)]
    for who in ("taster", "quiet"):
        rows += [vote(who, i, "tie" if i < 24 else "a", day=1, shown_first=shown(i))
                 for i in range(60)]
    rows += [vote("taster", i, "tie" if i < 24 else "a", day=8, shown_first=shown(i + 1),
                  comparison_id=f"again{i}") for i in range(0, 40, 2)]
    out = audit.reviewer_audit(warehouse(rows))
    v, flagged = verdicts(out), dict(zip(out["reviewer_id"], out["flagged"], strict=True))
    assert v["quiet"] == "overuses ties" and flagged["quiet"]
    assert audit.TIES_FROM_VOTES_ALONE in out.filter(reviewer_id="quiet")["reasons"][0]
    assert v["taster"] == audit.TIE_TASTE and not flagged["taster"]
    assert "consistent on repeats" in out.filter(reviewer_id="taster")["reasons"][0]


def test_speed_counts_as_much_as_it_tells_the_careless_from_the_careful() -> None:
    """With a fit: 20 reviewers whose votes favour lapses 1000 to 1, all fast, and 80 whose
    votes favour careful 1000 to 1, 20 of them fast (practised experts). The two-class EM reads
    fast as (21/22) / (21/82) = 3.7x as likely from the careless, and a fast reviewer whose
    votes say nothing (Bayes factor 1) as careless with probability 0.2 * 21/22 / (0.2 * 21/22
    + 0.8 * 21/82) = 0.48: speed alone does not settle it. Without a fit the votes' factor
    comes from agreement: the same reviewers agreeing on 50% and 90% of 40 votes."""
    from dissensus.analytics.audit_speed import speed_evidence

    frame = pl.DataFrame({
        "n_votes": [40] * 102,
        "fast": [True] * 20 + [True] * 20 + [False] * 60 + [None, True],
        "model_lapse_evidence": [1000.0] * 20 + [0.001] * 80 + [9.0, None],
        "reliability": [0.5] * 20 + [0.9] * 80 + [0.5, None],
    })
    with_fit = speed_evidence(frame, min_votes=5, model=True)
    assert with_fit is not None and with_fit.reviewers == 100 and with_fit.agreement is None
    assert with_fit.pi == pytest.approx(0.2, abs=1e-3)
    assert with_fit.fast_careless == pytest.approx(21 / 22, abs=1e-3)
    assert with_fit.fast_careful == pytest.approx(21 / 82, abs=1e-3)
    expected = 0.2 * 21 / 22 / (0.2 * 21 / 22 + 0.8 * 21 / 82)
    assert with_fit.posterior(1.0, fast=True) == pytest.approx(expected, abs=1e-3)
    assert with_fit.posterior(1.0, fast=False) < 0.05
    assert "fast is 3.7x as likely" in with_fit.words()
    no_fit = speed_evidence(frame, min_votes=5, model=False)
    assert no_fit is not None and no_fit.agreement is not None
    assert no_fit.agreement == pytest.approx((21 / 42, 2881 / 3202), abs=1e-3)
    assert no_fit.ratio == pytest.approx(with_fit.ratio, abs=0.01)
    # 20 agreements in 40 votes: the careless class's rate, far below the careful's
    assert no_fit.votes_factor(0.5, 40) > 1e6 > 1e-6 > no_fit.votes_factor(0.9, 40)
    assert speed_evidence(frame, min_votes=50, model=True) is None
