"""Disagreement explorer: pairs by verdict, the two answers side by side, votes by school."""

import polars as pl
import streamlit as st

from dissensus.dashboards import charts, data
from dissensus.dashboards.views._common import NO_FIT, answer_cards, download, warehouse

st.title("Disagreement explorer")
k, h = warehouse()
fit_id = h.fit["fit_id"] if h.fit else None
if fit_id is None:
    st.info(NO_FIT + " Meanwhile: the pairs whose raw votes are most split (no causes told apart).")
    pairs = data.split_pairs(k)
    st.dataframe(pairs, hide_index=True, width="stretch")
    download(pairs, "split_pairs")
else:
    pairs = data.pair_estimates(k, fit_id)
    if pairs.height == 0:
        st.info(f"The fit `{fit_id}` wrote no pair estimates.")
        st.stop()
    for note in h.fit["diagnostics"].get("pair_notes") or []:  # what the votes cannot tell
        st.info(note)
    left, right = st.columns([1, 2])
    left.altair_chart(charts.verdict_counts(pairs), width="stretch")
    with right:
        verdicts = st.multiselect("Verdict", ["pluralism", "noise", "ambiguous", "unsettled",
                                              "clear"],
                                  default=["pluralism", "noise", "ambiguous", "unsettled"],
                                  key="verdict")
        categories = st.multiselect("Category", sorted(pairs["category"].unique().to_list()),
                                    key="category")
        min_votes = st.slider("At least this many votes", 1, max(2, int(pairs["n_votes"].max())),
                              1, key="pair_min_votes")
    pairs = pairs.filter(pl.col("verdict").is_in(verdicts or ["clear"])
                         & (pl.col("n_votes") >= min_votes))
    if categories:
        pairs = pairs.filter(pl.col("category").is_in(categories))
    st.dataframe(pairs, hide_index=True, width="stretch", height=300,
                 column_config={c: st.column_config.ProgressColumn(c, min_value=0, max_value=1,
                                                                   format="percent")
                                for c in ("noise_share", "pluralism_share", "ambiguity_share")})
    download(pairs, "pair_estimates")
    top = pairs.head(25).with_columns(
        label=pl.col("prompt").str.slice(0, 50) + " · " + pl.col("pair_id").str.slice(0, 4))
    if top.height:
        st.altair_chart(charts.disagreement_shares(top), width="stretch")

st.header("Pair")
if pairs.height == 0:
    st.info("No pair matches these filters.")
else:
    ids = pairs["pair_id"].head(500).to_list()
    names = {}
    if "prompt" in pairs.columns:
        names = dict(zip(ids, pairs["prompt"].head(500).to_list(), strict=True))
    pid = st.selectbox("Pair", ids, key="pair",
                       format_func=lambda p: f"{(names.get(p) or p)[:80]} ({p[:6]})")
    sel = pairs.filter(pl.col("pair_id") == pid).row(0, named=True)
    if "verdict" in sel:
        st.write(f"**Verdict: {sel['verdict']}** — noise {sel['noise_share']:.0%}, pluralism "
                 f"{sel['pluralism_share']:.0%}, ambiguity {sel['ambiguity_share']:.0%} of the "
                 f"disagreement; {sel['n_votes']} votes.")
        if sel["verdict"] == "unsettled":
            st.caption("Unsettled: the votes disagree, but a lapse, a careful close call and a "
                       "split of views explain these few votes about as well, so no cause is "
                       "named. More votes, gold questions or repeats on this pair would settle "
                       "it.")
    answer_cards(data.pair_cards(k, pid))
    st.altair_chart(charts.pair_votes(data.pair_votes(k, pid, fit_id)), width="stretch")

st.header("What each school prefers, per category")
prefs = data.tag_preferences(k, fit_id)
if prefs.height == 0:
    st.info("No reply flags (refusal, escalation, …) to compare: ingest `response_*_tags`.")
else:
    cats = sorted(prefs["category"].unique().to_list())
    cat = st.selectbox("Category", cats, key="pref_category",
                       index=cats.index("urgent_symptoms") if "urgent_symptoms" in cats else 0)
    st.altair_chart(charts.tag_preferences(prefs.filter(pl.col("category") == cat), cat),
                    width="stretch")
    download(prefs, "school_preferences")
contrasts = h.fit["diagnostics"].get("school_contrasts") if h.fit else None
if contrasts:
    st.subheader("Where the fit finds the schools differ")
    st.caption("Each school's weight on a reply feature, relative to the schools' mean "
               "(`tag|category`: the tag within that category). Learned by the annotator model "
               "from all pairs at once; the chart above counts votes.")
    n_schools = len(contrasts[0]["weights"])
    table = pl.DataFrame({
        "feature": [c["feature"] for c in contrasts],
        **{f"school {s}": [c["weights"][s] for c in contrasts] for s in range(n_schools)},
    })
    st.dataframe(table, hide_index=True, width="stretch")
