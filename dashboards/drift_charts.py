"""Altair charts of the Deployment drift page."""

from __future__ import annotations

import altair as alt
import polars as pl


def share_extrapolating(cells: pl.DataFrame) -> alt.LayerChart:
    """Per category over the windows: the share of turns beyond the 99th percentile of
    held-out training distances, with the alarmed windows as red bands."""
    frame = cells.select("window", "category", "share_extrapolating", "baseline_share",
                         "alarm")
    line = alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("window:O", title="window"),
        y=alt.Y("share_extrapolating:Q", title="share extrapolating", axis=alt.Axis(format="%")),
        color=alt.Color("category:N"),
        tooltip=["window", "category", alt.Tooltip("share_extrapolating:Q", format=".1%"),
                 alt.Tooltip("baseline_share:Q", format=".1%"), "alarm"])
    bands = alt.Chart(frame.filter(pl.col("alarm"))).mark_rect(opacity=0.12, color="red").encode(
        x="window:O")
    return (bands + line).properties(title="Share outside the training data (red: alarm)",
                                     height=300)


def reward_boxes(scores: pl.DataFrame, head: str) -> alt.Chart:
    """The reward distribution of ``head`` per window."""
    return alt.Chart(scores).mark_boxplot(extent="min-max").encode(
        x=alt.X("window:O"), y=alt.Y("score:Q", title=f"{head} reward (sd units)"),
        color=alt.Color("window:O", legend=None),
    ).properties(title=f"{head} reward by window", height=260)
