"""Overview: data health, ingest batches, quarantine, the latest fit and its diagnostics."""

import polars as pl
import streamlit as st

from dissensus.dashboards import data, source
from dissensus.dashboards.views._common import NO_FIT, download, warehouse

st.title("Overview")
k, h = warehouse(need_comparisons=False)
c = h.counts
snapshot = source.snapshot_of(k)
st.caption(f"Warehouse `{h.path}`, opened read-only." if snapshot is None else
           f"Warehouse `{h.path}`, read through the API server's snapshot `{snapshot.path}`.")
cols = st.columns(6)
for col, (label, value) in zip(cols, (
    ("Comparisons", c.comparisons), ("Pairs", c.pairs), ("Prompts", c.prompts),
    ("Reviewers", c.reviewers), ("Ingest batches", c.batches),
    ("Rows in quarantine", c.quarantined),
), strict=True):
    col.metric(label, f"{value:,}")
if c.comparisons == 0:
    st.info("**The warehouse holds no comparisons yet.** Ingest a file with "
            "`dissensus ingest FILE` or build the demo with `dissensus demo`.")
elif c.comparisons_without_reviewer:
    st.caption(f"{c.comparisons_without_reviewer:,} comparisons have no reviewer id; the "
               "reviewer audit and the annotator model leave them out.")

st.subheader("Latest annotator fit")
fit = h.fit
if fit is None:
    st.info(NO_FIT)
else:
    d = fit["diagnostics"]
    cols = st.columns(4)
    cols[0].metric("Method", str(fit["method"]))
    cols[1].metric("Schools", int(fit["n_schools"]))
    cols[2].metric("Comparisons fitted", f"{int(fit['n_comparisons']):,}")
    cols[3].metric("Seconds", f"{float(fit['seconds']):.1f}")
    st.caption(f"Fit `{fit['fit_id']}` made {fit['created_at']:%Y-%m-%d %H:%M}.")
    if d.get("school_weights"):
        st.write("School sizes: " + ", ".join(
            f"school {i}: {w:.0%}" for i, w in enumerate(d["school_weights"])))
    if d.get("verdicts"):
        st.write("Pairs by verdict: " + ", ".join(f"{n} {v:,}" for n, v in d["verdicts"].items()))
    # what the data cannot support, in words: about reviewers, then about pairs
    for note in (d.get("verdict_notes") or []) + (d.get("pair_notes") or []):
        st.info(note)
    for warning in d.get("warnings") or []:
        st.warning(warning)
    bad = [f"{name} = {d[name]}" for name, bad_if in (
        ("r_hat_max", lambda x: x > 1.01), ("divergences", lambda x: x > 0))
        if isinstance(d.get(name), int | float) and bad_if(d[name])]
    if bad:
        st.warning("Sampler diagnostics look bad: " + ", ".join(bad))
    with st.expander("All diagnostics"):
        if d.get("loo_table"):
            st.dataframe(pl.DataFrame(d["loo_table"]), hide_index=True)
        st.json({key: v for key, v in d.items() if key != "loo_table"}, expanded=False)

st.subheader("Ingest batches")
b = data.batches(k)
if b.height == 0:
    st.info("No ingest batches yet.")
else:
    st.dataframe(b, hide_index=True, width="stretch")
    download(b, "ingest_batches")

st.subheader("Quarantine")
if c.quarantined == 0:
    st.success("Quarantine is empty: every row read was accepted or a duplicate.")
else:
    s = data.quarantine_summary(k)
    st.dataframe(s, hide_index=True, width="stretch")
    batch_ids = b["batch"].to_list() if b.height else []
    chosen = st.selectbox("Rows of batch", ["all", *batch_ids], key="quarantine_batch")
    rows = data.quarantine_rows(k, None if chosen == "all" else int(chosen))
    st.dataframe(rows, hide_index=True, width="stretch")
    download(rows, "quarantine")
