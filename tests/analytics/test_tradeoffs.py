"""analytics.tradeoffs on a hand-made warehouse whose answers can be worked out by hand."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from dissensus.analytics import tradeoffs as tr
from dissensus.warehouse.db import connect_memory
from dissensus.warehouse.pair_votes import store_pair_school_votes


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


@pytest.fixture
def fit(con: duckdb.DuckDBPyConnection, fake_fit) -> str:
    """A FAKE two-school fit 'f1': reviewers s0* in school 0, the others in school 1."""
    return fake_fit(con, "f1", created_at=datetime(2026, 1, 2), method="test", n_schools=2,
                    n_comparisons=9, seconds=0.0, weights="""SELECT comparison_id, 1.0 AS weight,
        CASE WHEN reviewer_id LIKE 's0%' THEN [1.0, 0.0] ELSE [0.0, 1.0] END AS school_weights
        FROM comparisons""")


def test_votes_without_a_fit_pool_everyone(con: duckdb.DuckDBPyConnection) -> None:
    votes = tr.school_votes(con, None)
    assert tr.school_names(votes) == ["all"]
    ae = votes.filter(pl.col("pair_id") == "p_ae").row(0, named=True)
    assert ae["w:all"] == 3 and ae["share_1:all"] == pytest.approx(2 / 3)
    er = votes.filter(pl.col("pair_id") == "p_er").row(0, named=True)
    assert er["share_1:all"] == pytest.approx(2.5 / 3)  # a tie counts 1/2
    assert tr.school_prevalence(votes) == {}


def test_votes_by_school_follow_the_fit(con: duckdb.DuckDBPyConnection, fit: str) -> None:
    assert tr.latest_fit_id(con) == fit
    votes = tr.school_votes(con, fit)
    assert tr.school_names(votes) == ["all", "school 0", "school 1"]
    ae = votes.filter(pl.col("pair_id") == "p_ae").row(0, named=True)
    assert ae["share_1:school 0"] == 1.0 and ae["share_1:school 1"] == 0.0
    assert tr.school_prevalence(votes) == pytest.approx({"school 0": 6 / 9, "school 1": 3 / 9})


def test_category_rates_by_hand(con: duckdb.DuckDBPyConnection, fit: str) -> None:
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


def test_reviewer_scores_prefer_each_schools_favourite(con: duckdb.DuckDBPyConnection,
                                                       fit: str) -> None:
    votes = tr.school_votes(con, fit)
    picks = tr.preferred(tr.reviewer_scores(votes)).filter(pl.col("prompt_id") == "u")
    chosen = dict(zip(picks["source"], picks["response_id"], strict=True))
    assert chosen["reviewers: school 0"] == "A"
    assert chosen["reviewers: school 1"] == "E"


def test_what_if_moves_the_pick_with_the_weights(con: duckdb.DuckDBPyConnection,
                                                 fit: str) -> None:
    votes = tr.school_votes(con, fit)
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


def test_tag_preferences(con: duckdb.DuckDBPyConnection, fit: str) -> None:
    votes = tr.school_votes(con, fit)
    prefs = tr.tag_preferences(votes, tr.responses_frame(con))
    esc = prefs.filter((pl.col("flag") == "escalation") & (pl.col("category") == "urgent_symptoms"))
    by = dict(zip(esc["school"], esc["share_for_flagged"], strict=True))
    # school 1 always picks E; school 0: against A 0/2, against R 0.75 -> (0 + 0 + 0.5 + 1) / 4
    assert by["school 1"] == pytest.approx(1.0)
    assert by["school 0"] == pytest.approx((0 + 0 + 1 + 0.5) / 4)


def test_stored_votes_equal_the_computed_ones(con: duckdb.DuckDBPyConnection, fit: str) -> None:
    computed = tr.school_votes(con, fit).sort("pair_id")
    assert store_pair_school_votes(con, fit) == 3
    stored = tr.school_votes(con, fit).sort("pair_id")
    assert stored.columns == computed.columns
    for column in stored.columns:
        a, b = stored[column].to_list(), computed[column].to_list()
        assert a == pytest.approx(b) if stored[column].dtype == pl.Float64 else a == b


# ---- the array book against a plain, row-by-row reference ------------------------------------

SCHOOLS = ["all", "school 0", "school 1"]


def _reference_pick(scores: dict[str, float], members: list[str]) -> str | None:
    scored = [r for r in members if r in scores]
    if not scored:
        return None
    top = max(scores[r] for r in scored)
    return min(r for r in scored if scores[r] == top)


def _reference(world: dict, source: str) -> dict[str, dict[str, float | None]]:
    """Rates and satisfaction per category for one source, by plain loops."""
    responses, pairs, scores = world["responses"], world["pairs"], world["scores"][source]
    prompts: dict[str, list[str]] = {}
    for rid, r in responses.items():
        prompts.setdefault(r["prompt_id"], []).append(rid)
    sums: dict[str, dict[str, list[float]]] = {}

    def add(cat: str, name: str, value: float, weight: float = 1.0) -> None:
        for key in (cat, "(all)"):
            s = sums.setdefault(key, {}).setdefault(name, [0.0, 0.0])
            s[0] += value * weight
            s[1] += weight

    for pid, members in prompts.items():
        pick = _reference_pick(scores, members)
        if pick is None:
            continue
        cat, chosen = world["category"][pid], responses[pick]
        alternative = any(not responses[r]["refusal"] and not responses[r]["hallucination"]
                          for r in members)
        add(cat, "n_prompts", 1.0)
        add(cat, "refusal_rate", float(chosen["refusal"]))
        add(cat, "false_refusal_rate", float(chosen["refusal"] and alternative))
        add(cat, "hallucination_rate", float(chosen["hallucination"]))
        if cat in tr.URGENT_CATEGORIES:
            add(cat, "escalation_rate", float(chosen["escalation"]))
    for pair in pairs:
        r1, r2 = pair["response_1_id"], pair["response_2_id"]
        if r1 not in scores or r2 not in scores:
            continue
        cat = world["category"][pair["prompt_id"]]
        for school in SCHOOLS:
            w, share = pair[f"w:{school}"], pair[f"share_1:{school}"]
            if not w:
                continue
            agree = share if scores[r1] > scores[r2] else (
                1 - share if scores[r1] < scores[r2] else 0.5)
            add(cat, f"satisfaction_{school}", agree, w)
    return {cat: {name: (s[0] / s[1] if s[1] else None) if name != "n_prompts" else s[0]
                  for name, s in by.items()} for cat, by in sums.items()}


@st.composite
def worlds(draw: st.DrawFn) -> dict:
    categories = ["urgent_symptoms", "billing", "(none)"]
    responses, category, pairs = {}, {}, []
    for p in range(draw(st.integers(1, 5))):
        pid = f"p{draw(st.integers(0, 99))}-{p}"
        category[pid] = draw(st.sampled_from(categories))
        members = [f"r{draw(st.integers(0, 999)):03d}-{p}-{i}"
                   for i in range(draw(st.integers(1, 4)))]
        for rid in members:
            flags = {f: draw(st.booleans()) for f in tr.FLAGS}
            responses[rid] = {"prompt_id": pid, **flags}
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if draw(st.booleans()):
                    pair = {"pair_id": f"{a}|{b}", "prompt_id": pid, "response_1_id": a,
                            "response_2_id": b}
                    for school in SCHOOLS:
                        w = draw(st.sampled_from([0.0, 0.5, 1.0, 2.5]))
                        pair[f"w:{school}"] = w or None
                        pair[f"share_1:{school}"] = draw(st.sampled_from(
                            [0.0, 0.25, 0.5, 1.0])) if w else None
                    pairs.append(pair)
    scores = {}
    for source in ("reward: school_0", "reward: school_1", "other"):
        scores[source] = {r: float(draw(st.integers(0, 3))) for r in responses
                          if draw(st.integers(0, 4))}
    return {"responses": responses, "category": category, "pairs": pairs, "scores": scores}


def _frames(world: dict) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    rows = [{"response_id": rid, "prompt_id": r["prompt_id"],
             "category": world["category"][r["prompt_id"]],
             "tags": [f for f in tr.FLAGS if r[f]], **{f: r[f] for f in tr.FLAGS}}
            for rid, r in world["responses"].items()]
    responses = pl.DataFrame(rows, schema={"response_id": pl.String, "prompt_id": pl.String,
                                           "category": pl.String, "tags": pl.List(pl.String),
                                           **{f: pl.Boolean for f in tr.FLAGS}})
    vote_schema = {c: pl.String for c in ("pair_id", "prompt_id", "response_1_id",
                                          "response_2_id")}
    vote_schema |= {f"{k}:{s}": pl.Float64 for s in SCHOOLS for k in ("w", "share_1")}
    votes = pl.DataFrame(world["pairs"], schema=vote_schema)
    scores = pl.DataFrame(
        [{"response_id": r, "prompt_id": world["responses"][r]["prompt_id"], "source": src,
          "score": v} for src, by in world["scores"].items() for r, v in by.items()],
        schema={"response_id": pl.String, "prompt_id": pl.String, "source": pl.String,
                "score": pl.Float64})
    return responses, votes, scores


@settings(max_examples=60, deadline=None)
@given(world=worlds())
def test_book_matches_a_row_by_row_reference(world: dict) -> None:
    responses, votes, scores = _frames(world)
    table = tr.category_tradeoffs(scores, votes, responses)
    for source in world["scores"]:
        expected = _reference(world, source)
        got = {r["category"]: r for r in table.filter(pl.col("source") == source)
               .iter_rows(named=True)}
        assert set(got) == set(expected)
        for cat, values in expected.items():
            for name in ("n_prompts", *tr_rates(), *(f"satisfaction_{s}" for s in SCHOOLS)):
                want = values.get(name)
                assert got[cat][name] == (pytest.approx(want) if want is not None else None), (
                    source, cat, name)
    # picks: the array book and the frame-level `preferred` agree
    book = tr.TradeoffBook.build(responses, votes, scores, reviewer_sources=False)
    frame_picks = tr.preferred(scores)
    for source in world["scores"]:
        if source not in book.sources:  # a source that scored nothing picks nothing
            assert frame_picks.filter(pl.col("source") == source).height == 0
            continue
        picks = book.picks(book.sources[source])
        got = {book.prompt_ids[p]: book.response_ids[i] for p, i in enumerate(picks) if i >= 0}
        want = dict(frame_picks.filter(pl.col("source") == source)
                    .select("prompt_id", "response_id").iter_rows())
        assert got == want


def tr_rates() -> tuple[str, ...]:
    return ("refusal_rate", "escalation_rate", "false_refusal_rate", "hallucination_rate")


_FLAGS = dict.fromkeys(("refusal", "escalation", "hallucination", "hedge", "appointment_offer"),
                       False)
TIED_WORLD = {  # after the what-if, both answers to p0-1 score -0.204 (found by hypothesis)
    "responses": {r: {"prompt_id": f"p0-{r[5]}", **_FLAGS} for r in (
        "r000-0-0", "r000-0-1", "r000-0-2", "r000-0-3", "r000-1-0", "r000-1-1", "r000-2-0")},
    "category": dict.fromkeys(("p0-0", "p0-1", "p0-2"), "urgent_symptoms"),
    "pairs": [],
    "scores": {
        "reward: school_0": {"r000-0-1": 0.0, "r000-0-2": 0.0, "r000-0-3": 1.0, "r000-1-0": 2.0,
                             "r000-1-1": 0.0, "r000-2-0": 1.0},
        "reward: school_1": {"r000-0-1": 0.0, "r000-0-2": 1.0, "r000-0-3": 3.0, "r000-1-0": 0.0,
                             "r000-2-0": 1.0},
        "other": {},
    },
}


@settings(max_examples=40, deadline=None)
@given(world=worlds())
@example(world=TIED_WORLD)
def test_book_reviewer_scores_and_what_if_match_the_frames(world: dict) -> None:
    responses, votes, scores = _frames(world)
    book = tr.TradeoffBook.build(responses, votes, reviewer_sources=True)
    frame = tr.reviewer_scores(votes)
    for source, arr in book.reviewer_sources().items():
        want = dict(frame.filter(pl.col("source") == source)
                    .select("response_id", "score").iter_rows())
        got = {book.response_ids[i]: v for i, v in enumerate(arr) if v == v}
        assert got.keys() == want.keys()
        assert [got[k] for k in sorted(got)] == pytest.approx([want[k] for k in sorted(want)])
    # the what-if against a frame-level combination: sum_k w_k z_k / sum_k w_k over the heads
    # that scored the response (a head with weight 0 still counts as a 0 term)
    weights, baseline = {"school 0": 1.0, "school 1": 3.0}, {"school 0": 1.0, "school 1": 0.0}
    heads = {"school 0": "reward: school_0", "school 1": "reward: school_1"}
    assume(all(scores.filter(pl.col("source") == h).height for h in heads.values()))
    result = tr.what_if(scores, votes, responses, weights, baseline=baseline)

    def combined(w: dict[str, float]) -> pl.DataFrame:
        parts = []
        for school, head in heads.items():
            part = scores.filter(pl.col("source") == head)
            sd = (part["score"].std() if part.height > 1 else None) or 1.0
            parts.append(part.select("response_id", "prompt_id", (
                w[school] / sum(w.values()) * (pl.col("score") - part["score"].mean()) / sd
            ).alias("score")))
        return pl.concat(parts).group_by("response_id", "prompt_id").agg(
            pl.col("score").sum()).with_columns(source=pl.lit("x"))

    def near_tie(frame: pl.DataFrame) -> bool:
        # two responses whose combined scores agree to rounding: which one "wins" is decided by
        # the last bit of the arithmetic, and the two implementations sum in different orders
        top = frame.sort("score", descending=True).group_by("prompt_id", maintain_order=True)
        gaps = top.head(2).group_by("prompt_id").agg(
            gap=pl.col("score").max() - pl.col("score").min(), n=pl.len())
        return gaps.filter((pl.col("n") > 1) & (pl.col("gap") < 1e-9)).height > 0

    assume(not near_tie(combined(baseline)) and not near_tie(combined(weights)))
    both = tr.preferred(combined(baseline)).join(tr.preferred(combined(weights)),
                                                 on="prompt_id", suffix="_after")
    assert result.n_prompts == both.height
    changed = both.filter(pl.col("response_id") != pl.col("response_id_after"))
    assert result.n_changed == changed.height
    assert set(result.changes["prompt_id"].to_list()) == set(changed["prompt_id"].to_list())
