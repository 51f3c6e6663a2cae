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
* ``satisfaction_<school>``: on the pairs of the category, the expected share of that school's
  (careful-weighted) votes that agree with the source's pick between the two replies;
  ``sum_j w_jk a_jk / sum_j w_jk`` with ``a_jk = s_jk`` when the source prefers response 1,
  ``1 - s_jk`` when it prefers response 2 and 1/2 on equal scores (``s_jk`` = school k's share for
  response 1, ties counted 1/2; ``w_jk`` = the school's vote weight on pair j).

The what-if (:func:`what_if`) combines per-school scores with weights chosen by a person:
``combined = sum_k w_k z_k / sum_k w_k`` where ``z_k`` is school k's score standardised over all
responses; it reports what the combined score prefers and what changes against a baseline weighting
(by default the schools' share of the votes).

Every function is pure: warehouse reads take a connection, the rest take frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

URGENT_CATEGORIES: tuple[str, ...] = ("urgent_symptoms",)
FLAGS: tuple[str, ...] = ("refusal", "escalation", "hallucination", "hedge", "appointment_offer")
ALL = "all"
REVIEWERS = "reviewers: "


def latest_fit_id(con: duckdb.DuckDBPyConnection) -> str | None:
    """The newest fit that wrote comparison weights; ``None`` without one."""
    rows = con.execute(
        "SELECT fit_id FROM fits WHERE fit_id IN (SELECT DISTINCT fit_id FROM comparison_weights) "
        "ORDER BY created_at DESC, fit_id DESC LIMIT 1"
    ).fetchall()
    return str(rows[0][0]) if rows else None


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
    """Per pair and school: the school's vote weight ``w`` and its share for response 1.

    ``school`` is ``all`` (every vote, careful-weighted with a fit) and, with a fit, ``school k``
    (votes weighted by ``weight * school_weights[k]``). Ties count 1/2. Columns: pair_id,
    prompt_id, response_1_id, response_2_id, school, w, share_1.
    """
    base = """
        SELECT p.pair_id, p.prompt_id, p.response_1_id, p.response_2_id, {school} AS school,
               sum({w}) AS w, sum({w} * (c.outcome + 1) / 2.0) / nullif(sum({w}), 0) AS share_1
        FROM {source} JOIN pairs p USING (pair_id)
        GROUP BY ALL HAVING sum({w}) > 0
    """
    if fit_id is None:
        return con.sql(base.format(
            school=f"'{ALL}'", w="1.0", source="comparisons c")).pl()
    n_schools = con.execute(
        "SELECT coalesce(max(len(school_weights)), 0) FROM comparison_weights WHERE fit_id = ?",
        [fit_id],
    ).fetchall()[0][0]
    # one pass, one aggregate per school (list index k + 1), instead of unnesting the
    # school weights into K rows per comparison and scanning twice
    vote = "(c.outcome + 1) / 2.0"
    sums = ["sum(c.weight) AS w_all", f"sum(c.weight * {vote}) AS s_all"]
    for k in range(int(n_schools)):
        sums += [f"sum(c.weight * c.sw[{k + 1}]) AS w_{k}",
                 f"sum(c.weight * c.sw[{k + 1}] * {vote}) AS s_{k}"]
    per_pair = con.sql(f"""
        SELECT p.pair_id, p.prompt_id, p.response_1_id, p.response_2_id, {", ".join(sums)}
        FROM (SELECT c.pair_id, c.outcome, coalesce(cw.weight, 1.0) AS weight,
                     cw.school_weights AS sw
              FROM comparisons c LEFT JOIN comparison_weights cw
              ON cw.comparison_id = c.comparison_id AND cw.fit_id = ?) c
        JOIN pairs p USING (pair_id)
        GROUP BY ALL
    """, params=[fit_id]).pl()
    ids = ["pair_id", "prompt_id", "response_1_id", "response_2_id"]
    parts = [
        per_pair.select(*ids, school=pl.lit(name), w=pl.col(f"w_{key}"),
                        share_1=pl.col(f"s_{key}") / pl.col(f"w_{key}"))
        .filter(pl.col("w") > 0)
        for key, name in [("all", ALL)] + [(str(k), f"school {k}") for k in range(n_schools)]
    ]
    return pl.concat(parts)


def school_names(votes: pl.DataFrame) -> list[str]:
    """The schools in ``votes``, ``all`` first."""
    names = sorted(set(votes["school"].to_list()) - {ALL})
    return [ALL, *names] if ALL in set(votes["school"].to_list()) else names


def reviewer_scores(votes: pl.DataFrame) -> pl.DataFrame:
    """Per response and school: mean vote share over its pairs (source ``reviewers: <school>``)."""
    oriented = pl.concat([
        votes.select(pl.col("response_1_id").alias("response_id"), "prompt_id", "school",
                     pl.col("share_1").alias("share")),
        votes.select(pl.col("response_2_id").alias("response_id"), "prompt_id", "school",
                     (1 - pl.col("share_1")).alias("share")),
    ])
    return oriented.group_by("response_id", "prompt_id", "school").agg(
        pl.col("share").mean().alias("score")
    ).select("response_id", "prompt_id", (pl.lit(REVIEWERS) + pl.col("school")).alias("source"),
             "score")


def reward_run_scores(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """A reward run's scores as sources ``<head>`` (the ``sd`` of distributional runs left out)."""
    return con.sql("""
        SELECT s.response_id, r.prompt_id, 'reward: ' || s.head AS source, s.score
        FROM reward_scores s JOIN responses r USING (response_id)
        WHERE s.run_id = ? AND s.head <> 'sd'
    """, params=[run_id]).pl()


def preferred(scores: pl.DataFrame) -> pl.DataFrame:
    """Per source and prompt, the response scored highest: source, prompt_id, response_id."""
    # hash aggregates, not a sort of every score: keep each prompt's top scores, then the
    # smallest response id among them
    key = ["source", "prompt_id"]
    return (
        scores.filter(pl.col("score") == pl.col("score").max().over(key))
        .group_by(key).agg(pl.col("response_id").min())
        .sort(key)
        .select("source", "prompt_id", "response_id")
    )


def _alternatives(responses: pl.DataFrame) -> pl.DataFrame:
    return responses.group_by("prompt_id").agg(
        (~pl.col("refusal") & ~pl.col("hallucination")).any().alias("has_alternative"))


def _rates(picks: pl.DataFrame, responses: pl.DataFrame) -> pl.DataFrame:
    """The rates per source and category, plus per source over every category ("(all)").

    Each rate is a mean of booleans over the prompts (nulls left out); it is aggregated once as
    sums and counts per (source, category) and the overall row adds those up.
    """
    urgent = pl.col("category").is_in(list(URGENT_CATEGORIES))
    joined = picks.join(responses.drop("prompt_id"), on="response_id", how="left").join(
        _alternatives(responses), on="prompt_id", how="left")
    flags = {
        "refusal_rate": pl.col("refusal"),
        "escalation_rate": pl.col("escalation").filter(urgent),
        "false_refusal_rate": pl.col("refusal") & pl.col("has_alternative"),
        "hallucination_rate": pl.col("hallucination"),
    }
    parts = [pl.len().alias("n_prompts")]
    for name, flag in flags.items():
        parts += [flag.sum().alias(f"{name}:sum"), flag.count().alias(f"{name}:count")]
    by_cat = joined.group_by("source", "category").agg(parts)
    counts = [c for c in by_cat.columns if c not in ("source", "category")]
    overall = by_cat.group_by("source").agg(pl.col(counts).sum()).with_columns(
        category=pl.lit("(all)"))
    both = pl.concat([by_cat, overall.select(by_cat.columns)])
    return both.select(
        "source", "category", pl.col("n_prompts").cast(pl.UInt32),
        *[pl.when(pl.col(f"{n}:count") > 0)
          .then(pl.col(f"{n}:sum") / pl.col(f"{n}:count")).alias(n) for n in flags],
    )


def satisfaction(scores: pl.DataFrame, votes: pl.DataFrame,
                 responses: pl.DataFrame) -> pl.DataFrame:
    """Per source, category and school: share of the school's votes agreeing with the source."""
    # one row per response with a score column per source: the pairs join it twice (a pair
    # row per school), not once per source
    wide = scores.pivot(on="source", index="response_id", values="score",
                        aggregate_function="first")
    sources = [c for c in wide.columns if c != "response_id"]
    pairs = votes.join(responses.select("prompt_id", "category").unique("prompt_id"),
                       on="prompt_id", how="left")
    j = pairs.join(wide.rename({c: f"1:{c}" for c in sources}),
                   left_on="response_1_id", right_on="response_id").join(
        wide.rename({c: f"2:{c}" for c in sources}),
        left_on="response_2_id", right_on="response_id")
    parts = []
    for source in sources:
        s1, s2 = pl.col(f"1:{source}"), pl.col(f"2:{source}")
        agree = (pl.when(s1 > s2).then(pl.col("share_1"))
                 .when(s1 < s2).then(1 - pl.col("share_1")).otherwise(0.5))
        parts.append(
            j.filter(s1.is_not_null() & s2.is_not_null())
            .group_by("category", "school")
            .agg(((agree * pl.col("w")).sum() / pl.col("w").sum()).alias("satisfaction"),
                 pl.len().alias("n_pairs"))
            .select(pl.lit(source).alias("source"), "category", "school", "satisfaction",
                    "n_pairs")
        )
    if not parts:
        return pl.DataFrame(schema={"source": pl.String, "category": pl.String,
                                    "school": pl.String, "satisfaction": pl.Float64,
                                    "n_pairs": pl.UInt32})
    return pl.concat(parts)


def category_tradeoffs(scores: pl.DataFrame, votes: pl.DataFrame,
                       responses: pl.DataFrame) -> pl.DataFrame:
    """Per source and category (plus ``(all)``): the rates and per-school satisfaction columns.

    See the module docstring for the definitions. Columns: source, category, n_prompts,
    refusal_rate, escalation_rate, false_refusal_rate, hallucination_rate, satisfaction_<school>.
    """
    picks = preferred(scores).join(
        responses.select("prompt_id", "category").unique("prompt_id"), on="prompt_id", how="left")
    rates = _rates(picks, responses)
    sat = satisfaction(scores, votes, responses)
    sat_all = sat.group_by("source", "school").agg(
        ((pl.col("satisfaction") * pl.col("n_pairs")).sum() / pl.col("n_pairs").sum())
        .alias("satisfaction")).with_columns(category=pl.lit("(all)"))
    sat = pl.concat([sat.select("source", "category", "school", "satisfaction"),
                     sat_all.select("source", "category", "school", "satisfaction")])
    for school in school_names(votes):
        part = sat.filter(pl.col("school") == school).select(
            "source", "category", pl.col("satisfaction").alias(f"satisfaction_{school}"))
        rates = rates.join(part, on=["source", "category"], how="left")
    return rates.sort("source", pl.col("category") == "(all)", "category")


def tag_preferences(votes: pl.DataFrame, responses: pl.DataFrame) -> pl.DataFrame:
    """What each school prefers, per category: on pairs where exactly one reply carries a flag,
    the school's weighted share of votes for the flagged reply (0.5 = indifferent).

    Columns: category, school, flag, n_pairs, weight, share_for_flagged.
    """
    r = responses.select("response_id", "category", *FLAGS)
    j = votes.join(r.rename({f: f"{f}_1" for f in FLAGS}).rename(
        {"response_id": "response_1_id"}), on="response_1_id").join(
        r.drop("category").rename({f: f"{f}_2" for f in FLAGS}).rename(
            {"response_id": "response_2_id"}), on="response_2_id")
    parts = []
    for f in FLAGS:
        one, two = pl.col(f"{f}_1"), pl.col(f"{f}_2")
        part = j.filter(one != two).with_columns(
            flag=pl.lit(f), share=pl.when(one).then(pl.col("share_1")).otherwise(
                1 - pl.col("share_1")))
        parts.append(part.select("category", "school", "flag", "w", "share"))
    if not parts:
        return pl.DataFrame()
    return pl.concat(parts).group_by("category", "school", "flag").agg(
        pl.len().alias("n_pairs"), pl.col("w").sum().alias("weight"),
        ((pl.col("share") * pl.col("w")).sum() / pl.col("w").sum()).alias("share_for_flagged"),
    ).sort("category", "flag", "school")


def school_prevalence(votes: pl.DataFrame) -> dict[str, float]:
    """Each school's share of the (careful-weighted) votes; ``{}`` without schools."""
    per = votes.filter(pl.col("school") != ALL).group_by("school").agg(pl.col("w").sum())
    total = float(per["w"].sum()) if per.height else 0.0
    return {s: float(w) / total for s, w in sorted(per.iter_rows())} if total else {}


def combined_scores(scores: pl.DataFrame, school_sources: dict[str, str],
                    weights: dict[str, float], name: str = "combined") -> pl.DataFrame:
    """``sum_k w_k z_k / sum_k w_k`` over the sources of ``school_sources`` (school -> source)."""
    total = sum(max(weights.get(k, 0.0), 0.0) for k in school_sources)
    if total <= 0:
        raise ValueError("at least one school needs a positive weight")
    parts = []
    for school, source in school_sources.items():
        w = max(weights.get(school, 0.0), 0.0) / total
        part = scores.filter(pl.col("source") == source)
        sd = part["score"].std() or 1.0
        parts.append(part.select("response_id", "prompt_id", (
            w * (pl.col("score") - part["score"].mean()) / sd).alias("score")))
    return pl.concat(parts).group_by("response_id", "prompt_id").agg(
        pl.col("score").sum()).with_columns(source=pl.lit(name)).select(
        "response_id", "prompt_id", "source", "score")


@dataclass(frozen=True)
class WhatIf:
    """Result of :func:`what_if`."""

    weights: dict[str, float]
    baseline_weights: dict[str, float]
    n_prompts: int
    n_changed: int
    summary: pl.DataFrame   # category_tradeoffs of 'baseline' and 'what-if'
    changes: pl.DataFrame   # prompt_id, category, before_id, after_id, before_tags, after_tags


def school_sources(scores: pl.DataFrame) -> dict[str, str]:
    """School -> source for per-school heads: reward heads ``school_k`` when present, else the
    reviewers' own per-school scores."""
    sources = set(scores["source"].unique().to_list())
    heads = {f"school {s.split('_')[-1]}": s for s in sources
             if s.startswith("reward: school_")}
    if heads:
        return dict(sorted(heads.items()))
    return {s[len(REVIEWERS):]: s for s in sorted(sources)
            if s.startswith(REVIEWERS) and s != REVIEWERS + ALL}


def what_if(scores: pl.DataFrame, votes: pl.DataFrame, responses: pl.DataFrame,
            weights: dict[str, float], baseline: dict[str, float] | None = None) -> WhatIf:
    """What the combined score prefers under ``weights`` and what changes against ``baseline``
    (default: the schools' share of the votes)."""
    mapping = school_sources(scores)
    if not mapping:
        raise ValueError("what-if needs per-school scores: a fit with schools, or a multi-head run")
    base_w = baseline if baseline is not None else (
        school_prevalence(votes) or {k: 1.0 for k in mapping})
    before = combined_scores(scores, mapping, base_w, "baseline")
    after = combined_scores(scores, mapping, weights, "what-if")
    both = pl.concat([before, after])
    summary = category_tradeoffs(both, votes, responses)
    tags = responses.select("response_id", pl.col("tags").list.join(", ").alias("tags"))
    picks = preferred(both)
    changes = (
        picks.filter(pl.col("source") == "baseline").select("prompt_id",
                                                            pl.col("response_id").alias("before_id"))
        .join(picks.filter(pl.col("source") == "what-if").select(
            "prompt_id", pl.col("response_id").alias("after_id")), on="prompt_id")
        .join(responses.select("prompt_id", "category").unique("prompt_id"), on="prompt_id")
        .join(tags.rename({"response_id": "before_id", "tags": "before_tags"}), on="before_id")
        .join(tags.rename({"response_id": "after_id", "tags": "after_tags"}), on="after_id")
    )
    changed = changes.filter(pl.col("before_id") != pl.col("after_id")).sort("category",
                                                                              "prompt_id")
    return WhatIf(dict(weights), dict(base_w), changes.height, changed.height, summary, changed)
