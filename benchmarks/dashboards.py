"""Time each dashboard page's queries on a large demo warehouse: first load and cached.

Usage: .venv/bin/python benchmarks/dashboards.py [--db PATH] [--n 1000000] [--preload]

Reuses a 1M warehouse given with --db (opened read-only); otherwise builds a demo warehouse of
--n comparisons under benchmarks/out/dashboards. The queries are the cached functions of
dashboards/data.py, called as the pages call them; "first" is a cold cache, "cached" the second
call; every page starts from empty caches. "what_if, new weights" and "category_tradeoffs,
other run" are what a slider move or picking another run asks once the page has loaded. A
warehouse without a fit times the no-fit paths (the pages then show their empty states).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import streamlit as st

from dissensus.dashboards import data

ROOT = Path(__file__).resolve().parent.parent
logging.getLogger("streamlit").setLevel(logging.ERROR)

for _name in ("streamlit", "streamlit.runtime.caching.cache_data_api",
              "streamlit.runtime.scriptrunner_utils.script_run_context"):
    logging.getLogger(_name).setLevel(logging.ERROR)

SHARED = ROOT / "benchmarks" / "out" / "audit" / "demo_1000000.duckdb"


def page_queries(k: data.Key) -> dict[str, list[tuple[str, Callable[[], object]]]]:
    h = data.health(k)
    fit_id = h.fit["fit_id"] if h.fit else None
    runs = data.reward_runs(k)
    run_id = runs["run_id"][0] if runs.height else None
    other_run = runs["run_id"][1] if runs.height > 1 else None
    audit_first = {}

    def first_reviewer() -> str:
        if "id" not in audit_first:
            audit_first["id"] = data.reviewer_audit(k)["reviewer_id"][0]
        return audit_first["id"]

    def first_pair() -> str:
        pairs = data.pair_estimates(k, fit_id) if fit_id else data.split_pairs(k)
        return pairs["pair_id"][0]

    weights = tuple((s, 0.5) for s in ("school 0", "school 1"))
    moved = tuple((s, w) for s, w in (("school 0", 0.2), ("school 1", 0.8)))
    st.cache_data.clear()  # the look-ups above must not warm the cache
    st.cache_resource.clear()
    return {
        "Overview": [("health", lambda: data.health(k)), ("batches", lambda: data.batches(k)),
                     ("quarantine_summary", lambda: data.quarantine_summary(k))],
        "Reviewer audit": [
            ("reviewer_audit", lambda: data.reviewer_audit(k)),
            ("drift_series", lambda: data.drift_series(k, first_reviewer())),
            ("school_disagreements", lambda: data.school_disagreements(k, first_reviewer())),
        ],
        "Disagreement explorer": [
            ("pairs", (lambda: data.pair_estimates(k, fit_id)) if fit_id
             else (lambda: data.split_pairs(k))),
            ("pair_cards", lambda: data.pair_cards(k, first_pair())),
            ("pair_votes", lambda: data.pair_votes(k, first_pair(), fit_id)),
            ("tag_preferences", lambda: data.tag_preferences(k, fit_id)),
        ],
        "Reward models": [("reward_runs", lambda: data.reward_runs(k))] + (
            [("reward_vs_length", lambda: data.reward_vs_length(k, run_id))] if run_id else []),
        "Trade-offs": [("category_tradeoffs", lambda: data.category_tradeoffs(k, fit_id, run_id))]
        + ([("what_if", lambda: data.what_if(k, fit_id, run_id, weights)),
            ("what_if, new weights", lambda: data.what_if(k, fit_id, run_id, moved))]
           if fit_id else [])
        + ([("category_tradeoffs, other run",
             lambda: data.category_tradeoffs(k, fit_id, other_run))] if other_run else []),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--preload", action="store_true",
                        help="import the analytics modules before timing, as the server's "
                        "preload thread does when it serves its first page; prints the time")
    args = parser.parse_args()
    if args.preload:
        t0 = time.perf_counter()
        data.start_preload().join()
        print(f"preloaded the analytics modules in {time.perf_counter() - t0:.2f} s")
    built = ROOT / "benchmarks" / "out" / "dashboards" / f"demo_{args.n}.duckdb"
    db = args.db or (SHARED if SHARED.exists() else built)
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(ROOT / ".venv/bin/dissensus"), "--db", str(db), "demo", "--n",
                        str(args.n)], check=True)
    k = data.key(db)
    h = data.health(k)
    print(f"warehouse {db}: {h.counts.comparisons:,} comparisons, "
          f"fit: {h.fit['fit_id'] if h.fit else 'none'}, reward runs: {h.n_runs}")
    rows = []
    for page, queries in page_queries(k).items():
        # every page starts cold: nothing another page loaded is reused
        st.cache_data.clear()
        st.cache_resource.clear()
        total_first = total_cached = 0.0
        for name, fn in queries:
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            fn()
            t2 = time.perf_counter()
            rows.append((page, name, round(t1 - t0, 3), round(t2 - t1, 4)))
            total_first += t1 - t0
            total_cached += t2 - t1
            print(f"  {page:22s} {name:22s} first {t1 - t0:7.3f} s  cached {t2 - t1:7.4f} s",
                  flush=True)
        rows.append((page, "(page total)", round(total_first, 3), round(total_cached, 4)))
    table = pl.DataFrame(rows, schema=["page", "query", "first_s", "cached_s"], orient="row")
    with pl.Config(tbl_rows=100, tbl_width_chars=120):
        print(table)


if __name__ == "__main__":
    main()
