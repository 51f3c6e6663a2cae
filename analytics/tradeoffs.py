"""Trade-offs for product leads: what each reward head (or each school of reviewers) prefers.

Vocabulary. A *source* is anything that scores responses: a head of a reward run (rows of
``reward_scores``) or the reviewers themselves (``reviewers: all`` and, with a fit,
``reviewers: school k``; the score of a response is its mean weighted vote share over the pairs it
appears in). For every prompt a source *prefers* the response it scores highest (ties broken by
response id).

Per category and source (:func:`category_tradeoffs`):

* ``refusal_rate``: share of prompts whose preferred reply is tagged ``refusal``.
* ``escalation_rate``: on urgent-symptom prompts (category in :data:`URGENT_CATEGORIES`), the share
  whose preferred reply is tagged ``escalation``; null in other categories.
* ``false_refusal_rate``: share of prompts whose preferred reply refuses although another
  candidate for the same prompt neither refuses nor is flagged ``hallucination`` (an avoidable
  refusal).
* ``hallucination_rate``: share of prompts whose preferred reply is tagged ``hallucination``.
* ``satisfaction_<school>``: on the pairs of the category (of every category for ``(all)``), the
  expected share of that school's (careful-weighted) votes that agree with the source's pick
  between the two replies;
  ``sum_j w_jk a_jk / sum_j w_jk`` with ``a_jk = s_jk`` when the source prefers response 1,
  ``1 - s_jk`` when it prefers response 2 and 1/2 on equal scores (``s_jk`` = school k's share for
  response 1, ties counted 1/2; ``w_jk`` = the school's vote weight on pair j).

The what-if (:func:`what_if`) combines per-school scores with weights chosen by a person:
``combined = sum_k w_k z_k / sum_k w_k`` where ``z_k`` is school k's score standardised over all
responses; it reports what the combined score prefers and what changes against a baseline weighting
(by default the schools' share of the votes).

Every function is pure: warehouse reads take a connection, the rest take frames. The
computations run on a :class:`~analytics.tradeoff_book.TradeoffBook` (the inputs coded as arrays
once); a caller that asks several questions of the same data (the dashboards) keeps the book from
:func:`load_book` and asks it directly.
"""

from __future__ import annotations

import duckdb
import polars as pl

from dissensus.analytics.tradeoff_book import (
    ALL,
    FLAGS,
    REVIEWERS,
    URGENT_CATEGORIES,
    TradeoffBook,
    WhatIf,
    school_sources_of,
    vote_schools,
)
from dissensus.warehouse.fits import latest_fit
from dissensus.warehouse.pair_votes import has_pair_school_votes, n_schools, pair_school_votes_sql

__all__ = ["ALL", "FLAGS", "REVIEWERS", "URGENT_CATEGORIES", "TradeoffBook", "WhatIf",
           "category_tradeoffs", "latest_fit_id", "load_book", "preferred", "responses_frame",
           "reviewer_scores", "reward_run_scores", "school_names", "school_prevalence",
           "school_sources", "school_votes", "tag_preferences", "what_if"]


def latest_fit_id(con: duckdb.DuckDBPyConnection) -> str | None:
    """The newest fit that wrote comparison weights; ``None`` without one (the rule is
    :func:`dissensus.warehouse.fits.latest_fit`)."""
    return latest_fit(con, having="comparison_weights")


def responses_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per response: ids, category, length, tags and one boolean per flag."""
    flags = ", ".join(f"coalesce(list_contains(r.tags, '{f}'), false) AS {f}" for f in FLAGS)
    return con.sql(f"""
        SELECT r.response_id, r.prompt_id, coalesce(p.category, '(none)') AS category,
               r.model, t.n_chars, coalesce(r.tags, []::VARCHAR[]) AS tags, {flags}
        FROM responses r LEFT JOIN prompts p USING (prompt_id)
        LEFT JOIN texts t ON t.text_id = r.text_id
    """).pl()


def school_votes(con: duckdb.DuckDBPyConnection, fit_id: str | None) -> pl.DataFrame:
    """One row per pair: ids, and per school s the vote weight ``w:<s>`` and share for response 1
    ``share_1:<s>`` (null where the school did not vote).

    Schools: ``all`` (every vote, careful-weighted with a fit) and, with a fit, ``school k``
    (votes weighted by ``weight * school_weights[k]``); ties count 1/2. With a fit the values are
    read from ``pair_school_votes`` (stored with the fit, see :mod:`warehouse.pair_votes`, so
    they are the votes as of the fit) or, for a fit stored without them, computed the same way
    from the comparisons now.
    """
    if fit_id is None:
        return con.sql("""
            SELECT p.pair_id, p.prompt_id, p.response_1_id, p.response_2_id,
                   count(*)::DOUBLE AS "w:all", avg((c.outcome + 1) / 2.0) AS "share_1:all"
            FROM comparisons c JOIN pairs p USING (pair_id) GROUP BY ALL
        """).pl()
    if has_pair_school_votes(con, fit_id):
        source = "(SELECT pair_id, w, share_1 FROM pair_school_votes WHERE fit_id = ?)"
        width = con.execute("SELECT max(len(w)) FROM pair_school_votes WHERE fit_id = ?",
                            [fit_id]).fetchall()[0][0] or 1
        k = int(width) - 1
    else:
        k = n_schools(con, fit_id)
        source = f"({pair_school_votes_sql(k)})"
    names = [ALL] + [f"school {i}" for i in range(k)]
    columns = ", ".join(
        f'nullif(v.w[{i + 1}], 0) AS "w:{name}", '
        f'CASE WHEN v.w[{i + 1}] > 0 THEN v.share_1[{i + 1}] END AS "share_1:{name}"'
        for i, name in enumerate(names))
    return con.sql(f"""
        SELECT p.pair_id, p.prompt_id, p.response_1_id, p.response_2_id, {columns}
        FROM {source} v JOIN pairs p USING (pair_id)
    """, params=[fit_id]).pl()


def reward_run_scores(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """A reward run's scores as sources ``reward: <head>`` (the ``sd`` of distributional runs
    left out): response_id, prompt_id, source, score."""
    return con.sql("""
        SELECT s.response_id, r.prompt_id, 'reward: ' || s.head AS source, s.score
        FROM reward_scores s JOIN responses r USING (response_id)
        WHERE s.run_id = ? AND s.head <> 'sd'
    """, params=[run_id]).pl()


def load_book(con: duckdb.DuckDBPyConnection, fit_id: str | None,
              run_id: str | None = None) -> TradeoffBook:
    """Everything the trade-offs need, coded once: responses, the fit's school votes, the
    reviewers' own per-school scores and, with ``run_id``, that run's heads."""
    book = TradeoffBook.build(responses_frame(con), school_votes(con, fit_id))
    return book.with_scores(reward_run_scores(con, run_id)) if run_id else book


def school_names(votes: pl.DataFrame) -> list[str]:
    """The schools of a votes frame, ``all`` first."""
    names = vote_schools(votes)
    rest = sorted(set(names) - {ALL})
    return [ALL, *rest] if ALL in names else rest


def school_prevalence(votes: pl.DataFrame) -> dict[str, float]:
    """Each school's share of the (careful-weighted) votes; ``{}`` without schools."""
    per = {s: float(votes[f"w:{s}"].fill_null(0).sum()) for s in vote_schools(votes) if s != ALL}
    total = sum(per.values())
    return {s: w / total for s, w in sorted(per.items())} if total else {}


def reviewer_scores(votes: pl.DataFrame) -> pl.DataFrame:
    """Per response and school: mean vote share over its pairs (source ``reviewers: <school>``).

    Columns: response_id, prompt_id, source, score.
    """
    parts = []
    for school in vote_schools(votes):
        w, share = pl.col(f"w:{school}"), pl.col(f"share_1:{school}")
        voted = votes.filter(w > 0)
        for side, oriented in (("response_1_id", share), ("response_2_id", 1 - share)):
            parts.append(voted.select(pl.col(side).alias("response_id"), "prompt_id",
                                      source=pl.lit(REVIEWERS + school),
                                      share=oriented))
    if not parts:
        return pl.DataFrame(schema={"response_id": pl.String, "prompt_id": pl.String,
                                    "source": pl.String, "score": pl.Float64})
    return pl.concat(parts).group_by("response_id", "prompt_id", "source").agg(
        pl.col("share").mean().alias("score"))


def preferred(scores: pl.DataFrame) -> pl.DataFrame:
    """Per source and prompt, the response scored highest (smallest id on ties): source,
    prompt_id, response_id."""
    key = ["source", "prompt_id"]
    return (
        scores.filter(pl.col("score") == pl.col("score").max().over(key))
        .group_by(key).agg(pl.col("response_id").min())
        .sort(key)
        .select("source", "prompt_id", "response_id")
    )


def category_tradeoffs(scores: pl.DataFrame, votes: pl.DataFrame,
                       responses: pl.DataFrame) -> pl.DataFrame:
    """Per source and category (plus ``(all)``): the rates and per-school satisfaction columns.

    See the module docstring for the definitions. Columns: source, category, n_prompts,
    refusal_rate, escalation_rate, false_refusal_rate, hallucination_rate, satisfaction_<school>.
    Sorted by source, then category with ``(all)`` last.
    """
    book = TradeoffBook.build(responses, votes, scores, reviewer_sources=False)
    return book.category_tradeoffs()


def tag_preferences(votes: pl.DataFrame, responses: pl.DataFrame) -> pl.DataFrame:
    """What each school prefers, per category: on pairs where exactly one reply carries a flag,
    the school's weighted share of votes for the flagged reply (0.5 = indifferent).

    Columns: category, school, flag, n_pairs, weight, share_for_flagged.
    """
    return TradeoffBook.build(responses, votes, reviewer_sources=False).tag_preferences()


def school_sources(scores: pl.DataFrame) -> dict[str, str]:
    """School -> source for per-school heads: reward heads ``school_k`` when present, else the
    reviewers' own per-school scores."""
    return school_sources_of(set(scores["source"].unique().to_list()))


def what_if(scores: pl.DataFrame, votes: pl.DataFrame, responses: pl.DataFrame,
            weights: dict[str, float], baseline: dict[str, float] | None = None) -> WhatIf:
    """What the combined score prefers under ``weights`` and what changes against ``baseline``
    (default: the schools' share of the votes)."""
    book = TradeoffBook.build(responses, votes, scores, reviewer_sources=False)
    return book.what_if(weights, baseline)
