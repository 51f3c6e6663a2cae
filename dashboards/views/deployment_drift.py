"""Deployment drift (product leads): alarms per window and category, share extrapolating,
reward distributions by window, and the audit sample with its reasons."""

import polars as pl
import streamlit as st

from dissensus.dashboards import drift_charts, drift_data
from dissensus.dashboards.views._common import download, warehouse

st.title("Deployment drift")
k, _ = warehouse(need_comparisons=False)
runs = drift_data.traffic_runs(k)
if runs.height == 0:
    st.info("**No scored traffic yet.** Ingest logged turns with `dissensus traffic ingest FILE`, "
            "then score them with `dissensus score RUN --traffic` (the demo does both).")
    st.stop()
left, middle, right = st.columns(3)
run = left.selectbox("Reward run", runs["run_id"].to_list(), key="drift_run")
window = middle.radio("Window", ["week", "day"], horizontal=True, key="drift_window")
first = drift_data.report(k, run, window, None)
windows = sorted(first["cells"]["window"].unique().to_list())  # type: ignore[index]
choice = right.selectbox("Compare with", ["first window (default)", "training", *windows],
                         key="drift_baseline")
baseline = None if choice.startswith("first") else choice
result = first if baseline is None else drift_data.report(k, run, window, baseline)
cells: pl.DataFrame = result["cells"]  # type: ignore[assignment]
categories = sorted(cells["category"].unique().to_list())
shown = st.multiselect("Categories", categories, default=categories, key="drift_categories")
cells = cells.filter(pl.col("category").is_in(shown))
alarms = [a for a in result["alarms"] if any(f", {c}:" in a for c in shown)]  # type: ignore[union-attr]
if alarms:
    for alarm in alarms:
        st.error(alarm)
else:
    st.success("No alarm: no window and category differs from the reference beyond chance.")
for note in result["notes"]:  # type: ignore[union-attr]
    st.caption(note)
st.altair_chart(drift_charts.share_extrapolating(cells), width="stretch")
heads = [c.removeprefix("shift_") for c in cells.columns if c.startswith("shift_")]
table = cells.select("window", "category", "n", "share_extrapolating", "baseline_share",
                     "p_support", "p_mmd", "contested_share", *[f"shift_{h}" for h in heads],
                     "refusal_rate", "hallucination_rate", "escalation_urgent_rate",
                     "thumbs_down_rate", "alarm")
st.dataframe(table, hide_index=True, width="stretch")
download(table, f"drift-{run}")

st.subheader("Reward distributions by window")
head = st.selectbox("Head", heads, index=len(heads) - 1, key="drift_head")
scores = drift_data.rewards_by_window(k, run, head, window)
scores = scores.filter(pl.col("category").is_in(shown))
if scores.height:
    st.altair_chart(drift_charts.reward_boxes(scores, head), width="stretch")

st.subheader("Audit sample")
a, b = st.columns(2)
strategy = a.radio("Pick by", ["extrapolating", "contested", "stratified"], horizontal=True,
                   key="audit_strategy")
n = b.slider("Turns", 10, 500, 50, step=10, key="audit_n")
sample = drift_data.audit(k, run, n, strategy).filter(pl.col("category").is_in(shown))
st.caption(f"{sample.height} turns; write the file for reviewers with `dissensus audit-sample "
           f"--run {run} --n {n} --strategy {strategy}`.")
st.dataframe(sample, hide_index=True, width="stretch")
download(sample, f"audit-{run}-{strategy}", "Download the audit sample (CSV)")
