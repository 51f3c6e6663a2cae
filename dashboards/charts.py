"""Altair charts for the dashboards: titled, labelled axes with units, intervals as intervals."""

from __future__ import annotations

import altair as alt
import polars as pl

VERDICT_COLORS = alt.Scale(
    domain=["clear", "noise", "pluralism", "ambiguous", "unsettled"],
    range=["#4c78a8", "#e45756", "#f58518", "#9d9d9d", "#bab0ac"],
)
SHARE_COLORS = alt.Scale(domain=["noise", "pluralism", "ambiguity"],
                         range=["#e45756", "#f58518", "#9d9d9d"])
PCT = alt.Axis(format="%")


def _frame(df: pl.DataFrame) -> pl.DataFrame:
    """The frame without list or struct columns (Altair reads polars directly)."""
    return df.select([c for c, t in df.schema.items() if not isinstance(t, pl.List | pl.Struct)])


def reliability_intervals(df: pl.DataFrame, id_col: str = "who") -> alt.Chart:
    """Reliability with its interval per reviewer (one row each, most concerning on top)."""
    base = alt.Chart(_frame(df)).encode(
        y=alt.Y(f"{id_col}:N", sort=None, title="reviewer"),
        tooltip=[id_col, "verdict", alt.Tooltip("reliability:Q", format=".2f"),
                 alt.Tooltip("reliability_low:Q", format=".2f"),
                 alt.Tooltip("reliability_high:Q", format=".2f"), "n_votes"],
    )
    rule = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("reliability_low:Q", title="reliability (share of careful judgments)",
                scale=alt.Scale(domain=[0, 1]), axis=PCT),
        x2="reliability_high:Q",
        color=alt.Color("flagged:N", title="flagged",
                        scale=alt.Scale(domain=[True, False], range=["#e45756", "#4c78a8"])),
    )
    point = base.mark_point(filled=True, size=50, color="black").encode(x="reliability:Q")
    return (rule + point).properties(
        title="Reliability with interval, most concerning first",
        height=max(120, 16 * df.height))


def speed_vs_reliability(df: pl.DataFrame, id_col: str = "who") -> alt.Chart:
    return alt.Chart(_frame(df.drop_nulls(["median_seconds", "reliability"]))).mark_circle(
        size=45, opacity=0.7).encode(
        x=alt.X("median_seconds:Q", title="median time per judgment (seconds, log scale)",
                scale=alt.Scale(type="log")),
        y=alt.Y("reliability:Q", title="reliability", axis=PCT),
        color=alt.Color("verdict:N", title="verdict"),
        tooltip=[id_col, "verdict", alt.Tooltip("median_seconds:Q", format=".0f"),
                 alt.Tooltip("reliability:Q", format=".2f")],
    ).properties(title="Reliability vs speed: rushed reviewers sit bottom left", height=320)


def position_bias(df: pl.DataFrame, id_col: str = "who") -> alt.Chart:
    base = alt.Chart(_frame(df)).encode(y=alt.Y(f"{id_col}:N", sort=None, title="reviewer"))
    rule = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("first_rate_low:Q", title="share of picks for the first-shown reply",
                scale=alt.Scale(domain=[0, 1]), axis=PCT),
        x2="first_rate_high:Q",
        color=alt.Color("position_biased:N", title="biased",
                        scale=alt.Scale(domain=[True, False], range=["#e45756", "#4c78a8"])),
        tooltip=[id_col, alt.Tooltip("first_rate:Q", format=".2f"), "n_votes"])
    point = base.mark_point(filled=True, color="black").encode(x="first_rate:Q")
    half = alt.Chart(alt.Data(values=[{"x": 0.5}])).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    return (rule + point + half).properties(
        title="Position bias: first-shown pick rate with interval (dashed = no bias)",
        height=max(120, 16 * df.height))


def drift(series: pl.DataFrame, who: str) -> alt.Chart:
    long = series.unpivot(index=["period", "n_votes"],
                          on=["loo_agreement", "pool_loo_agreement"],
                          variable_name="series", value_name="agreement").with_columns(
        pl.col("series").replace({"loo_agreement": who, "pool_loo_agreement": "pool"}),
        pl.col("period").cast(pl.String))
    return alt.Chart(_frame(long)).mark_line(point=True).encode(
        x=alt.X("period:T", title="week"),
        y=alt.Y("agreement:Q", title="agreement with the other reviewers", axis=PCT),
        color=alt.Color("series:N", title=""),
        tooltip=["period:T", "series", alt.Tooltip("agreement:Q", format=".2f"), "n_votes"],
    ).properties(title=f"Drift: weekly agreement of {who} vs the pool", height=260)


def verdict_counts(pairs: pl.DataFrame) -> alt.Chart:
    counts = pairs.group_by("verdict").len("pairs")
    return alt.Chart(_frame(counts)).mark_bar().encode(
        x=alt.X("pairs:Q", title="pairs"), y=alt.Y("verdict:N", title="verdict", sort="-x"),
        color=alt.Color("verdict:N", scale=VERDICT_COLORS, legend=None),
        tooltip=["verdict", "pairs"],
    ).properties(title="Pairs by verdict", height=160)


def disagreement_shares(pairs: pl.DataFrame) -> alt.Chart:
    long = pairs.select("pair_id", "label", "noise_share", "pluralism_share",
                        "ambiguity_share").unpivot(
        index=["pair_id", "label"], variable_name="cause", value_name="share").with_columns(
        pl.col("cause").str.replace("_share", ""))
    return alt.Chart(_frame(long)).mark_bar().encode(
        y=alt.Y("label:N", sort=None, title="pair (prompt)"),
        x=alt.X("share:Q", stack="normalize", title="share of the disagreement", axis=PCT),
        color=alt.Color("cause:N", scale=SHARE_COLORS, title="cause"),
        tooltip=["pair_id", "cause", alt.Tooltip("share:Q", format=".2f")],
    ).properties(title="Where the disagreement comes from, per pair",
                 height=max(120, 18 * pairs.height))


def pair_votes(votes: pl.DataFrame) -> alt.Chart:
    return alt.Chart(_frame(votes)).mark_bar().encode(
        x=alt.X("votes:Q", title="votes (weighted by school membership)"),
        y=alt.Y("school:N", title="school"),
        color=alt.Color("answer:N", title="answer", scale=alt.Scale(
            domain=["response 1", "tie", "response 2"], range=["#4c78a8", "#bab0ac", "#f58518"])),
        tooltip=["school", "answer", alt.Tooltip("votes:Q", format=".1f")],
    ).properties(title="Votes on this pair, by school", height=140)


def tag_preferences(df: pl.DataFrame, category: str) -> alt.Chart:
    base = alt.Chart(_frame(df)).encode(
        y=alt.Y("flag:N", title="reply flag"),
        yOffset="school:N",
        color=alt.Color("school:N", title="school"),
    )
    bars = base.mark_bar().encode(
        x=alt.X("share_for_flagged:Q", title="share of votes for the flagged reply",
                scale=alt.Scale(domain=[0, 1]), axis=PCT),
        tooltip=["school", "flag", alt.Tooltip("share_for_flagged:Q", format=".2f"),
                 "n_pairs"])
    half = alt.Chart(alt.Data(values=[{"x": 0.5}])).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    return (bars + half).properties(
        title=f"What each school prefers in {category} (dashed = indifferent)", height=260)


def accuracy_by_head(df: pl.DataFrame) -> alt.Chart:
    return alt.Chart(_frame(df)).mark_bar().encode(
        x=alt.X("accuracy:Q", title="held-out accuracy", scale=alt.Scale(domain=[0, 1]), axis=PCT),
        y=alt.Y("target:N", title="judged against"),
        yOffset="run:N", color=alt.Color("run:N", title="run"),
        tooltip=["run", "target", alt.Tooltip("accuracy:Q", format=".3f")],
    ).properties(title="Accuracy against the consensus and against each school", height=260)


def calibration(df: pl.DataFrame, what: str = "P(reply 1 preferred)",
                seen: str = "observed share preferring reply 1",
                title: str = "Calibration (dashed = perfect)") -> alt.Chart:
    diag = alt.Chart(alt.Data(values=[{"x": 0, "y": 0}, {"x": 1, "y": 1}])).mark_line(
        strokeDash=[4, 4], color="gray").encode(x="x:Q", y="y:Q")
    line = alt.Chart(_frame(df)).mark_line(point=True).encode(
        x=alt.X("mean_predicted:Q", title=f"predicted {what}", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("observed:Q", title=seen, scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("run:N", title="run"), tooltip=["run", "n",
                                                        alt.Tooltip("observed:Q", format=".2f")])
    return (diag + line).properties(title=title, height=300)


def reward_vs_length(df: pl.DataFrame) -> alt.Chart:
    return alt.Chart(_frame(df)).mark_circle(size=25, opacity=0.5).encode(
        x=alt.X("n_chars:Q", title="reply length (characters)"),
        y=alt.Y("score:Q", title="reward (standardised)"),
        color=alt.Color("head:N", title="head"),
        tooltip=["head", "n_chars", alt.Tooltip("score:Q", format=".2f"), "category"],
    ).properties(title="Reward vs reply length (a proxy trap if it climbs)", height=300)


def reward_by_tag(df: pl.DataFrame) -> alt.Chart:
    base = alt.Chart(_frame(df)).encode(y=alt.Y("tag:N", title="reply tag"),
                                        yOffset="head:N", color=alt.Color("head:N", title="head"))
    rule = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("low:Q", title="mean reward with 95% interval (standardised)"), x2="high:Q")
    point = base.mark_point(filled=True).encode(
        x="mean:Q", tooltip=["head", "tag", alt.Tooltip("mean:Q", format=".2f"), "n"])
    return (rule + point).properties(title="Reward by reply tag", height=280)


def tradeoff_rates(df: pl.DataFrame, metric: str, label: str) -> alt.Chart:
    return alt.Chart(_frame(df.drop_nulls(metric))).mark_bar().encode(
        x=alt.X(f"{metric}:Q", title=label, axis=PCT),
        y=alt.Y("category:N", title="category"), yOffset="source:N",
        color=alt.Color("source:N", title="preferred by"),
        tooltip=["source", "category", alt.Tooltip(f"{metric}:Q", format=".1%"), "n_prompts"],
    ).properties(title=f"{label} of the preferred replies, per category", height=300)


def what_if_compare(df: pl.DataFrame, label: str) -> alt.Chart:
    return alt.Chart(_frame(df)).mark_bar().encode(
        x=alt.X("value:Q", title=label, axis=PCT), y=alt.Y("measure:N", title=""),
        yOffset="source:N", color=alt.Color("source:N", title="weighting",
                                            scale=alt.Scale(domain=["baseline", "what-if"],
                                                            range=["#9d9d9d", "#4c78a8"])),
        tooltip=["source", "measure", alt.Tooltip("value:Q", format=".1%")],
    ).properties(title=f"Baseline vs what-if weighting: {label}", height=260)
