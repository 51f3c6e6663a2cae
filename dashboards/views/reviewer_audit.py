"""Reviewer audit (labeling leads): ranked reviewers, why they are flagged, report cards."""

import polars as pl
import streamlit as st

from dissensus.analytics.audit import (
    MINORITY_VIEW,
    minority_view_note,
    speed_note,
    unsettled_note,
)
from dissensus.analytics.audit_config import AuditConfig
from dissensus.dashboards import charts, data
from dissensus.dashboards.views._common import NO_FIT, answer_cards, download, warehouse, who

st.title("Reviewer audit")
k, h = warehouse()
audit = data.reviewer_audit(k)
if audit.height == 0:
    st.info("No reviewer ids in this warehouse: the audit needs comparisons that name their "
            "reviewer.")
    st.stop()
audit = who(audit)
st.caption(f"Reliability from the {audit['reliability_source'][0]}. The audit's own checks' "
           f"intervals cover {AuditConfig().level:.0%}.")
if h.fit is None:
    st.info(NO_FIT + " Until then reliability is model-free: a careful minority view can look "
            "like noise.")
else:
    for note in h.fit["diagnostics"].get("verdict_notes") or []:
        st.info(note)
    for note in (unsettled_note(audit), minority_view_note(audit)):
        if note:
            st.info(note)
if note := speed_note(audit):
    st.info(note)

n_flagged = int(audit["flagged"].sum())
cols = st.columns(4)
cols[0].metric("Reviewers", f"{audit.height:,}")
cols[1].metric("Flagged", f"{n_flagged:,}")
cols[2].metric("Median reliability", f"{audit['reliability'].median() or 0:.2f}")
cols[3].metric(MINORITY_VIEW.capitalize(),
               f"{int((audit['verdict'] == MINORITY_VIEW).sum()):,}")

with st.expander("Filters", expanded=True):
    fc = st.columns(3)
    only_flagged = fc[0].checkbox("Flagged only", key="only_flagged")
    verdicts = fc[1].multiselect("Verdict", sorted(audit["verdict"].unique().to_list()),
                                 key="verdicts")
    min_votes = fc[2].number_input("At least this many votes", 0, value=0, key="min_votes")
shown = audit.filter(pl.col("n_votes") >= min_votes)
if only_flagged:
    shown = shown.filter(pl.col("flagged"))
if verdicts:
    shown = shown.filter(pl.col("verdict").is_in(verdicts))
if shown.height == 0:
    st.info("No reviewer matches these filters.")
    st.stop()

table_cols = [c for c in ("rank", "who", "verdict", "flagged", "reasons", "n_votes",
                           "reliability", "reliability_low", "reliability_high", "agreement",
                           "agreement_low", "agreement_high", "school", "first_rate",
                           "median_seconds") if c in shown.columns]
st.dataframe(shown.select(table_cols), hide_index=True, width="stretch", height=320,
             column_config={"who": "reviewer"})
download(shown.drop("reviewer_id") if st.session_state.get("pseudonymise") else shown,
         "reviewer_audit")

tabs = st.tabs(["Reliability", "Reliability vs speed", "Position bias"])
with tabs[0]:
    st.altair_chart(charts.reliability_intervals(shown.head(40)), width="stretch")
    if shown.height > 40:
        st.caption(f"The 40 most concerning of {shown.height:,} reviewers.")
with tabs[1]:
    sample = shown if shown.height <= 5000 else shown.sample(5000, seed=0)
    st.altair_chart(charts.speed_vs_reliability(sample), width="stretch")
with tabs[2]:
    pb = shown.drop_nulls("first_rate").sort(
        (pl.col("first_rate") - 0.5).abs(), descending=True).head(40)
    st.altair_chart(charts.position_bias(pb), width="stretch")

st.header("Report card")
options = shown["reviewer_id"].to_list()
labels = dict(zip(options, shown["who"].to_list(), strict=True))
rid = st.selectbox("Reviewer", options, format_func=lambda r: labels.get(r, r), key="reviewer")
row = shown.filter(pl.col("reviewer_id") == rid).row(0, named=True)
cols = st.columns(4)
cols[0].markdown(f"Verdict\n\n**{row['verdict']}**")
rel = row["reliability"]
cols[1].metric("Reliability", "?" if rel is None else f"{rel:.2f}",
               help=f"interval {row['reliability_low'] or 0:.2f}–"
               f"{row['reliability_high'] or 0:.2f}")
cols[2].metric("Votes", f"{row['n_votes']:,}")
cols[3].metric("School", "—" if row["school"] is None else f"school {row['school']}")
if row["reasons"]:
    st.write("**Why:** " + row["reasons"])
series = data.drift_series(k, rid)
if series.height >= 2:
    st.altair_chart(charts.drift(series, labels[rid]), width="stretch")
st.subheader("Disagreements with their school's consensus")
dis = data.school_disagreements(k, rid)
if dis.height == 0:
    st.info("No votes against a clear consensus of this reviewer's school.")
for i, d in enumerate(dis.head(5).iter_rows(named=True)):
    with st.expander(f"{d['prompt'][:90]}… — answered {d['reviewer_answer']}, consensus "
                     f"{d['consensus']} ({d['consensus_share']:.0%} of {d['n_others']})",
                     expanded=i == 0):
        answer_cards(data.pair_cards(k, d["pair_id"]))
