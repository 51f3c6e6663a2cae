"""analytics.tradeoffs on a hand-made warehouse whose answers can be worked out by hand."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from analytics import tradeoffs as tr
from warehouse.db import connect_memory


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """One urgent prompt u (replies: E escalates, A offers an appointment, R refuses) and one
    billing prompt b (replies: H hallucinates, R2 refuses). School 0 likes A, school 1 likes E."""
    c = connect_memory()
    c.execute("""INSERT INTO prompts VALUES ('u', 'urgent_symptoms', 1), ('b', 'billing', 1)""")
    c.execute("""INSERT INTO texts VALUES ('tu','chest pain',10,1), ('tb','bill',4,1),
        ('te','go to ER',8,1), ('ta','slot at 3',9,1), ('tr','cannot help',11,1),
        ('th','invented',8,1), ('tr2','cannot help either',18,1)""")
    c.execute("""INSERT INTO responses VALUES
        ('E','u','te','m',['escalation'],1), ('A','u','ta','m',['appointment_offer'],1),
        ('R','u','tr','m',['refusal'],1), ('H','b','th','m',['hallucination'],1),
        ('R2','b','tr2','m',['refusal'],1)""")
    c.execute("""INSERT INTO pairs VALUES ('p_ae','u','A','E',1), ('p_er','u','E','R',1),
        ('p_hr','b','H','R2',1)""")
    rows = []
    # pair, reviewer, outcome (+1: response_1 wins)
    votes = [("p_ae", "s0a", 1), ("p_ae", "s0b", 1), ("p_ae", "s1a", -1),
             ("p_er", "s0a", 1), ("p_er", "s1a", 1), ("p_er", "s0b", 0),
             ("p_hr", "s0a", -1), ("p_hr", "s1a", -1), ("p_hr", "s0b", 1)]
    for i, (pair, rev, out) in enumerate(votes):
        r1, r2 = {"p_ae": ("A", "E"), "p_er": ("E", "R"), "p_hr": ("H", "R2")}[pair]
        prompt = "b" if pair == "p_hr" else "u"
        rows.append(f"('c{i}', true, 'h{i}', 1, {i}, '{rev}', true, '{pair}', '{prompt}', '{r1}',"
                    f" '{r2}', true, 'a', {out}, 'a', 1, NULL, TIMESTAMP '2026-01-01', 30,"
                    f" NULL, NULL, NULL, NULL, NULL, NULL)")
    c.execute("INSERT INTO comparisons VALUES " + ", ".join(rows))
    return c


def _fit(con: duckdb.DuckDBPyConnection) -> str:
    con.execute("INSERT INTO fits VALUES ('f1', TIMESTAMP '2026-01-02', 'test', 2, 9, 0, NULL, "
                "NULL, NULL)")
    con.execute("""INSERT INTO comparison_weights SELECT 'f1', comparison_id, 1.0,
        CASE WHEN reviewer_id LIKE 's0%' THEN [1.0, 0.0] ELSE [0.0, 1.0] END FROM comparisons""")
    return "f1"


def test_votes_without_a_fit_pool_everyone(con: duckdb.DuckDBPyConnection) -> None:
    votes = tr.school_votes(con, None)
    assert tr.school_names(votes) == ["all"]
    ae = votes.filter(pl.col("pair_id") == "p_ae").row(0, named=True)
    assert ae["w"] == 3 and ae["share_1"] == pytest.approx(2 / 3)
    er = votes.filter(pl.col("pair_id") == "p_er").row(0, named=True)
    assert er["share_1"] == pytest.approx(2.5 / 3)  # a tie counts 1/2
    assert tr.school_prevalence(votes) == {}


def test_votes_by_school_follow_the_fit(con: duckdb.DuckDBPyConnection) -> None:
    fit = _fit(con)
    assert tr.latest_fit_id(con) == fit
    votes = tr.school_votes(con, fit)
    assert tr.school_names(votes) == ["all", "school 0", "school 1"]
    ae = {r["school"]: r for r in votes.filter(pl.col("pair_id") == "p_ae").iter_rows(named=True)}
    assert ae["school 0"]["share_1"] == 1.0 and ae["school 1"]["share_1"] == 0.0
    assert tr.school_prevalence(votes) == pytest.approx({"school 0": 6 / 9, "school 1": 3 / 9})


def test_category_rates_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    fit = _fit(con)
    votes = tr.school_votes(con, fit)
    responses = tr.responses_frame(con)
    scores = pl.DataFrame({
        "response_id": ["E", "A", "R", "H", "R2"], "prompt_id": ["u", "u", "u", "b", "b"],
        "source": ["refuser"] * 5, "score": [0.0, 0.1, 1.0, 0.0, 1.0]})
    t = tr.category_tradeoffs(scores, votes, responses)
    urgent = t.filter(pl.col("category") == "urgent_symptoms").row(0, named=True)
    billing = t.filter(pl.col("category") == "billing").row(0, named=True)
    overall = t.filter(pl.col("category") == "(all)").row(0, named=True)
    assert urgent["refusal_rate"] == 1 and urgent["escalation_rate"] == 0
    assert urgent["false_refusal_rate"] == 1  # E and A neither refuse nor hallucinate
    assert billing["refusal_rate"] == 1 and billing["false_refusal_rate"] == 0  # only H besides
    assert billing["escalation_rate"] is None
    assert overall["n_prompts"] == 2 and overall["hallucination_rate"] == 0
    # p_ae: A (0.1) over E (0.0): school 0 share for A = 1; p_er: R over E: school 0 share 1/4.
    assert urgent["satisfaction_school 0"] == pytest.approx((2 * 1.0 + 2 * 0.25) / 4)
    assert urgent["satisfaction_school 1"] == pytest.approx((0.0 + 0.0) / 2)


def test_reviewer_scores_prefer_each_schools_favourite(con: duckdb.DuckDBPyConnection) -> None:
    votes = tr.school_votes(con, _fit(con))
    picks = tr.preferred(tr.reviewer_scores(votes)).filter(pl.col("prompt_id") == "u")
    chosen = dict(zip(picks["source"], picks["response_id"], strict=True))
    assert chosen["reviewers: school 0"] == "A"
    assert chosen["reviewers: school 1"] == "E"


def test_what_if_moves_the_pick_with_the_weights(con: duckdb.DuckDBPyConnection) -> None:
    votes = tr.school_votes(con, _fit(con))
    responses = tr.responses_frame(con)
    scores = tr.reviewer_scores(votes)
    caution = tr.what_if(scores, votes, responses, {"school 0": 0.0, "school 1": 1.0},
                         baseline={"school 0": 1.0, "school 1": 0.0})
    assert caution.n_prompts == 2
    urgent = caution.changes.filter(pl.col("prompt_id") == "u").row(0, named=True)
    assert (urgent["before_id"], urgent["after_id"]) == ("A", "E")
    s = caution.summary.filter(pl.col("category") == "urgent_symptoms")
    rate = dict(zip(s["source"], s["escalation_rate"], strict=True))
    assert rate == {"baseline": 0.0, "what-if": 1.0}
    same = tr.what_if(scores, votes, responses, {"school 0": 1.0, "school 1": 0.0},
                      baseline={"school 0": 1.0, "school 1": 0.0})
    assert same.n_changed == 0
    with pytest.raises(ValueError):
        tr.what_if(scores, votes, responses, {"school 0": 0.0, "school 1": 0.0})


def test_what_if_uses_multihead_school_heads_when_present() -> None:
    scores = pl.DataFrame({"response_id": ["x", "y"], "prompt_id": ["p", "p"],
                           "source": ["reward: school_0", "reward: school_1"],
                           "score": [1.0, 2.0]})
    assert tr.school_sources(scores) == {"school 0": "reward: school_0",
                                         "school 1": "reward: school_1"}


def test_tag_preferences(con: duckdb.DuckDBPyConnection) -> None:
    votes = tr.school_votes(con, _fit(con))
    prefs = tr.tag_preferences(votes, tr.responses_frame(con))
    esc = prefs.filter((pl.col("flag") == "escalation") & (pl.col("category") == "urgent_symptoms"))
    by = dict(zip(esc["school"], esc["share_for_flagged"], strict=True))
    # school 1 always picks E; school 0: against A 0/2, against R 0.75 -> (0 + 0 + 0.5 + 1) / 4
    assert by["school 1"] == pytest.approx(1.0)
    assert by["school 0"] == pytest.approx((0 + 0 + 1 + 0.5) / 4)
