"""Property: whatever the input, ingest never loses or duplicates a row."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file

texts = st.sampled_from(["Book me in", "Thursday 9:00", "Call 911 now", "", "  ", "Héllo ✓"])
maybe = lambda strategy: st.one_of(st.none(), strategy)  # noqa: E731
rows = st.fixed_dictionaries(
    {
        "reviewer_id": maybe(st.sampled_from(["r1", "r2", "", "r3"])),
        "choice": maybe(st.sampled_from(["a", "b", "tie", "equal", "A", "x", ""])),
        "prompt": maybe(texts),
        "response_a": maybe(texts),
        "response_b": maybe(texts),
    },
    optional={
        "comparison_id": st.sampled_from(["c1", "c2", "c3"]),
        "shown_first": st.sampled_from(["a", "b", "left"]),
        "strength": st.one_of(st.integers(-1, 3), st.sampled_from(["2", "lots"])),
        "created_at": st.sampled_from(["2026-01-01T00:00:00Z", "soon"]),
        "seconds_spent": st.one_of(st.floats(-5, 500, allow_nan=False), st.just("n/a")),
        "reviewer_locale": st.sampled_from(["en-GB", "de-DE"]),
    },
)
lines = st.lists(
    st.one_of(rows.map(json.dumps), st.sampled_from(["{", "[]", "null", '"text"', "{}"])),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=lines, second=lines)
def test_ingest_accounts_for_every_row(first: list[str], second: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        con = connect(root / "w.duckdb")
        total_accepted = 0
        for name, content in [("a.jsonl", first), ("b.jsonl", second), ("c.jsonl", first + second)]:
            path = root / name
            path.write_text("\n".join(content) + "\n", encoding="utf-8")
            report = ingest_file(con, path, fmt="jsonl")
            assert report.accepted + report.quarantined + report.duplicates == report.rows_read
            assert report.rows_read == len(content)
            total_accepted += 0 if report.skipped else report.accepted
            stored = con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0]
            assert stored == total_accepted
            distinct = con.execute(
                "SELECT count(DISTINCT comparison_id) FROM comparisons").fetchall()[0][0]
            assert distinct == stored
        # The union file repeats rows of the first two: nothing new may be accepted twice.
        again = ingest_file(con, root / "c.jsonl", fmt="jsonl")
        assert again.skipped
        con.close()
