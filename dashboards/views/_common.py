"""Helpers shared by the pages: the warehouse check, empty states, downloads, reviewer names."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dissensus.dashboards import data, source

NO_FIT = (
    "**No annotator fit yet.** Reliability, schools and the causes of disagreement come from the "
    "annotator model. Run `dissensus fit` on this warehouse, then reload this page."
)


def warehouse(need_comparisons: bool = True) -> tuple[source.Key, data.Health]:
    """The cache key and health of the warehouse; stops the page with a helpful message.
    While an API server holds the warehouse, the page reads its snapshot and says so on top."""
    k = source.key()
    snapshot = source.snapshot_of(k)
    if snapshot is not None:
        st.info(snapshot.note(), icon=":material/photo_camera:")
    h = data.health(k)
    if h.problem:
        st.error(h.problem)
        if source.held_by_server(k):  # held, and no snapshot (yet, or the server keeps none)
            st.info("A running server writes a read snapshot for the dashboards a moment after "
                    "it starts (unless it runs with `--snapshot-interval 0`): reload this page "
                    "in a few seconds.")
        else:
            st.info("Build one with `dissensus demo`, or `dissensus ingest FILE`, then point "
                    "the dashboard at it with `dissensus --db PATH serve`.")
        st.stop()
    if need_comparisons and (h.counts is None or h.counts.comparisons == 0):
        st.info("**The warehouse holds no comparisons yet.** Ingest some with "
                "`dissensus ingest FILE` (or build the demo with `dissensus demo`), then reload.")
        st.stop()
    return k, h


def download(df: pl.DataFrame, name: str, label: str = "Download CSV") -> None:
    flat = df.select([c for c, t in df.schema.items() if not isinstance(t, pl.List | pl.Struct)])
    st.download_button(label, flat.write_csv(), file_name=f"{name}.csv", mime="text/csv",
                       key=f"download-{name}")


def who(df: pl.DataFrame, col: str = "reviewer_id") -> pl.DataFrame:
    """Add a ``who`` column: the reviewer id, or its pseudonym when the sidebar asks for one."""
    if st.session_state.get("pseudonymise"):
        return df.with_columns(pl.col(col).map_elements(data.pseudonym, return_dtype=pl.String)
                               .alias("who"))
    return df.with_columns(pl.col(col).alias("who"))


def answer_cards(card: dict, left: str = "Response 1", right: str = "Response 2") -> None:
    """The prompt above the two replies side by side, with tags, model and length."""
    if not card:
        st.warning("This pair's texts are not in the warehouse.")
        return
    st.markdown(f"**Prompt** ({card.get('category') or 'no category'})")
    st.info(card.get("prompt") or "(no prompt text)")
    cols = st.columns(2)
    for col, side, title in ((cols[0], "1", left), (cols[1], "2", right)):
        with col, st.container(border=True):
            tags = ", ".join(card.get(f"tags_{side}") or []) or "no tags"
            st.markdown(f"**{title}** · {card.get(f'model_{side}') or 'model unknown'} · "
                        f"{card.get(f'chars_{side}')} characters · tags: {tags}")
            st.write(card.get(f"text_{side}") or "")
