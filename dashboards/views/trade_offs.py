"""Trade-offs (product leads): what each head or school prefers per category, and a what-if."""

import polars as pl
import streamlit as st

from dissensus.dashboards import charts, data
from dissensus.dashboards.views._common import NO_FIT, download, warehouse

st.title("Trade-offs")
k, h = warehouse()
fit_id = h.fit["fit_id"] if h.fit else None
st.caption("For each prompt, a *source* (a reward head, or the reviewers of a school) prefers "
           "the reply it scores highest. Rates are shares of prompts; satisfaction is the share "
           "of a school's votes that agree with the source's picks.")
runs = data.reward_runs(k) if h.n_runs else pl.DataFrame({"run_id": []})
run_id = st.selectbox("Reward run to include", [None, *runs["run_id"].to_list()],
                      format_func=lambda r: "none (reviewers only)" if r is None else r,
                      index=1 if runs.height else 0, key="tradeoff_run")
table = data.category_tradeoffs(k, fit_id, run_id)
if fit_id is None:
    st.info(NO_FIT + " Until then only the pooled reviewers are a source; no schools.")
measures = {"refusal_rate": "Refusal rate", "escalation_rate": "Escalation rate (urgent symptoms)",
            "false_refusal_rate": "False refusal rate", "hallucination_rate": "Hallucination rate"}
measures |= {c: c.replace("satisfaction_", "Satisfaction of ") for c in table.columns
             if c.startswith("satisfaction_")}
sources = sorted(table["source"].unique().to_list())
chosen = st.multiselect("Sources", sources, default=sources[:4], key="sources")
measure = st.selectbox("Measure", list(measures), format_func=measures.get, key="measure")
shown = table.filter(pl.col("source").is_in(chosen or sources))
st.altair_chart(charts.tradeoff_rates(shown, measure, measures[measure]), width="stretch")
st.dataframe(shown, hide_index=True, width="stretch")
download(shown, "tradeoffs")

st.header("What if we weighted the schools differently?")
prevalence = data.school_prevalence(k, fit_id)
if not prevalence:
    st.info("The what-if needs schools: run `dissensus fit` (and optionally train a multi-head "
            "reward model) first.")
    st.stop()
st.caption("Baseline: each school weighted by its share of the votes "
           + ", ".join(f"{s} {w:.0%}" for s, w in prevalence.items())
           + ". The combined score uses the multi-head run's school heads when the run has "
             "them, otherwise the reviewers' own per-school preferences.")
cols = st.columns(len(prevalence))
weights = tuple((s, float(col.slider(f"Weight of {s}", 0.0, 1.0, round(w, 2), 0.05,
                                      key=f"weight-{s}")))
                for col, (s, w) in zip(cols, prevalence.items(), strict=True))
if sum(w for _, w in weights) <= 0:
    st.warning("Give at least one school a positive weight.")
    st.stop()
result = data.what_if(k, fit_id, run_id, weights)
m = st.columns(3)
m[0].metric("Prompts whose preferred reply changes", f"{result.n_changed:,}",
            help=f"of {result.n_prompts:,} prompts")
overall = result.summary.filter(pl.col("category") == "(all)")
def rate(source: str, col: str) -> float:
    v = overall.filter(pl.col("source") == source)[col]
    return float(v[0]) if v.len() and v[0] is not None else 0.0
for i, col in ((1, "refusal_rate"), (2, "escalation_rate")):
    after, before = rate("what-if", col), rate("baseline", col)
    m[i].metric(measures[col], f"{after:.1%}", f"{after - before:+.1%}", delta_color="off")
long = overall.unpivot(index="source", on=[c for c in measures if c in overall.columns],
                       variable_name="measure", value_name="value").with_columns(
    pl.col("measure").replace(measures))
st.altair_chart(charts.what_if_compare(long, "all categories"), width="stretch")
st.dataframe(result.summary, hide_index=True, width="stretch")
st.subheader("Prompts whose preferred reply changes")
if result.changes.height == 0:
    st.success("Nothing changes under these weights.")
else:
    st.dataframe(result.changes, hide_index=True, width="stretch")
    download(result.changes, "what_if_changes")
