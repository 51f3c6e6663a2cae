"""Reward models (researchers): runs, accuracy per head and school, calibration, proxy traps."""

import polars as pl
import streamlit as st

from dissensus.dashboards import charts, data
from dissensus.dashboards.views._common import download, warehouse

st.title("Reward models")
k, h = warehouse()
runs = data.reward_runs(k)
if runs.height == 0:
    st.info("**No reward runs yet.** Train one with `dissensus train --kind plain` (and "
            "`--kind weighted` / `--kind multihead` after `dissensus fit`, or `--kind "
            "mixture`, which learns its schools with the heads), then "
            "`dissensus score RUN_ID` for the reward plots.")
    st.stop()
st.dataframe(runs.drop("metrics"), hide_index=True, width="stretch")
download(runs, "reward_runs")
ids = runs["run_id"].to_list()
default = []
for kind in ("weighted", "plain", "multihead", "mixture"):
    match = runs.filter(pl.col("kind") == kind)
    if match.height and len(default) < 2:
        default.append(match["run_id"][0])
chosen = st.multiselect("Compare runs", ids, default=default or ids[:2], key="runs")
if not chosen:
    st.info("Pick at least one run.")
    st.stop()
picked = runs.filter(pl.col("run_id").is_in(chosen))
st.subheader("Side by side")
st.dataframe(data.reward_metric_table(picked), hide_index=True, width="stretch")
st.caption("contested_auc: how well a run's own signal finds the held-out pairs the fit calls "
           "pluralism (ROC AUC; 0.5 is chance). Multi-head runs read it from school-head "
           "disagreement, distributional runs from the spread, the others from low confidence.")
left, right = st.columns(2)
acc = data.reward_accuracy(picked)
if acc.height:
    left.altair_chart(charts.accuracy_by_head(acc), width="stretch")
cal = data.reward_calibration(picked)
if cal.height:
    right.altair_chart(charts.calibration(cal), width="stretch")

st.subheader("Where the schools would disagree")
school_runs = picked.filter(pl.col("kind").is_in(["multihead", "mixture"]))
for fit_id in data.fits_with_unseen_schools(
        k, tuple(sorted(set(school_runs["fit_id"].drop_nulls().to_list())))):
    runs_on = ", ".join(f"`{r}`" for r in school_runs.filter(pl.col("fit_id") == fit_id)["run_id"])
    st.warning(f"Fit `{fit_id}` chose schools but calls no pair pluralism, so no pair shows the "
               f"split that the school heads of {runs_on} learnt: read their disagreement as weak "
               "evidence (the fit's notes on the Overview say more).")
mixtures = data.mixture_summary(picked)
if mixtures.height:
    st.dataframe(mixtures, hide_index=True, width="stretch")
    st.caption("Mixture runs learn each reviewer's school with the heads (EM), starting from "
               "the annotator fit's schools when there is one.")
dis = data.disagreement_calibration(picked)
if dis.height:
    st.altair_chart(charts.calibration(
        dis, "P(schools disagree)", "observed: held-out votes of two schools differ",
        "Contested-pair prediction on held-out prompts (dashed = perfect)"), width="stretch")
    st.caption("For any pair of replies, runs with school heads predict the chance that a "
               "reviewer of one school and a reviewer of another pick different replies. "
               "Checked here against the held-out votes from different schools on the same "
               "pair.")
else:
    st.info("Runs with school heads (`--kind multihead` or `--kind mixture`) predict, for any "
            "pair of replies, how likely the schools are to disagree; none is selected.")
with_schools = school_runs["run_id"].to_list()
if with_schools:
    pick = st.selectbox("Pairs the schools are predicted to split on, by run", with_schools,
                        key="contest_run")
    predicted = data.predicted_disagreements(k, pick)
    if predicted.height:
        st.dataframe(predicted, hide_index=True, width="stretch", column_config={
            "p_disagree": st.column_config.ProgressColumn(
                "P(schools disagree)", min_value=0.0, max_value=1.0, format="%.2f")})
    else:
        st.info(f"No predictions for `{pick}` yet: it needs its scores (`dissensus score "
                f"{pick}`), and runs trained before this view need training again.")

st.subheader("Proxy traps")
run = st.selectbox("Run", chosen, key="proxy_run")
scores = data.reward_vs_length(k, run)
if scores.height == 0:
    st.info(f"Run `{run}` has no scores yet: `dissensus score {run}`.")
    st.stop()
left, right = st.columns(2)
sample = scores if scores.height <= 5000 else scores.sample(5000, seed=0)
left.altair_chart(charts.reward_vs_length(sample), width="stretch")
right.altair_chart(charts.reward_by_tag(data.reward_by_tag(scores)), width="stretch")
