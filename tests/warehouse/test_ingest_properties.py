"""Property: whatever the input, ingest never loses or duplicates a row.

The inputs include what a red-team run found hard: byte-order marks, NaN and infinity (as JSON
numbers, the strings "NaN" / "Infinity", and numbers too large for a double), texts of only
tabs, newlines or non-breaking spaces, and keys given twice in one object. Nothing non-finite
and no white-space-only text may be stored.
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file

texts = st.sampled_from(["Book me in", "Thursday 9:00", "Call 911 now", "", "  ", "Héllo ✓",
                         "\t\n", "\u00a0", " \u2003\r\n", "\ufeff"])
non_finite = st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "inf", 1e400, -1e400])
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
        "strength": st.one_of(st.integers(-1, 3), st.sampled_from(["2", "lots"]), non_finite),
        "created_at": st.sampled_from(["2026-01-01T00:00:00Z", "soon"]),
        "seconds_spent": st.one_of(st.floats(-5, 500, allow_nan=False), st.just("n/a"),
                                   non_finite),
        "reviewer_locale": st.sampled_from(["en-GB", "de-DE"]),
    },
)


def with_repeated_key(row: dict, key: str, value: str) -> str:
    """``row`` as a JSON line with ``key`` given once more at the end (DuckDB keeps the first)."""
    return json.dumps(row)[:-1] + (", " if row else "") + json.dumps(key) + ": " \
        + json.dumps(value) + "}"


repeated = st.builds(with_repeated_key, rows, st.sampled_from(["choice", "reviewer_id",
                                                               "prompt"]),
                     st.sampled_from(["a", "b", "r1", "Book me in"]))
lines = st.lists(
    st.one_of(rows.map(json.dumps), repeated,
              st.sampled_from(["{", "[]", "null", '"text"', "{}", '{"strength": NaN}'])),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=lines, second=lines, bom=st.booleans())
def test_ingest_accounts_for_every_row(first: list[str], second: list[str], bom: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        con = connect(root / "w.duckdb")
        total_accepted = 0
        for name, content in [("a.jsonl", first), ("b.jsonl", second), ("c.jsonl", first + second)]:
            path = root / name
            # A byte-order mark before the first line is not data: it must not cost that row.
            path.write_bytes((b"\xef\xbb\xbf" if bom else b"")
                             + ("\n".join(content) + "\n").encode("utf-8"))
            report = ingest_file(con, path, fmt="jsonl")
            assert report.accepted + report.quarantined + report.duplicates == report.rows_read
            assert report.rows_read == len(content)
            total_accepted += 0 if report.skipped else report.accepted
            stored = con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0]
            assert stored == total_accepted
            distinct = con.execute(
                "SELECT count(DISTINCT comparison_id) FROM comparisons").fetchall()[0][0]
            assert distinct == stored
            assert con.execute(
                "SELECT count(*) FROM comparisons WHERE NOT isfinite(strength) "
                "OR NOT isfinite(seconds_spent)").fetchall()[0][0] == 0
            assert con.execute(
                r"SELECT count(*) FROM texts WHERE regexp_full_match(body, "
                r"'[\s\pZ\x{feff}]*')").fetchall()[0][0] == 0
        # The union file repeats rows of the first two: nothing new may be accepted twice.
        again = ingest_file(con, root / "c.jsonl", fmt="jsonl")
        assert again.skipped
        con.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.lists(rows, min_size=1, max_size=15))
def test_a_csv_byte_order_mark_changes_nothing(content: list[dict]) -> None:
    """The same CSV with and without a UTF-8 BOM: the same counts and the same stored rows."""
    names = ["reviewer_id", "choice", "prompt", "response_a", "response_b", "strength",
             "seconds_spent"]
    stored = []
    with tempfile.TemporaryDirectory() as folder:
        for bom in (False, True):
            path = Path(folder) / f"in{int(bom)}.csv"
            with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(names)
                for row in content:
                    writer.writerow(["" if row.get(n) is None else str(row.get(n))
                                     for n in names])
            con = connect(Path(folder) / f"w{int(bom)}.duckdb")
            report = ingest_file(con, path, fmt="csv")
            assert report.accepted + report.quarantined + report.duplicates == report.rows_read
            assert report.unknown_columns == []
            assert con.execute(
                "SELECT count(*) FROM comparisons WHERE NOT isfinite(strength) "
                "OR NOT isfinite(seconds_spent)").fetchall()[0][0] == 0
            stored.append((
                (report.rows_read, report.accepted, report.quarantined, report.duplicates),
                con.execute("SELECT reviewer_id, pair_id, choice, strength, seconds_spent "
                            "FROM comparisons ORDER BY ALL").fetchall(),
            ))
            con.close()
    assert stored[0] == stored[1]


def _reference_lines(data: bytes) -> list[tuple[int, str]]:
    """(line number, text) of the rows a JSONL reader must hand on: split on newlines, a
    leading byte-order mark dropped, blank lines (up to 7 characters of white space) left out."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    parts = data.split(b"\n")
    found = []
    for number, part in enumerate(parts, start=1):
        ends_line = number < len(parts)
        length = len(part) + (1 if ends_line else 0)  # the reader counts the newline
        if length == 0 or (length <= 8 and not part.strip()):
            continue
        found.append((number, part.decode("utf-8")))
    return found


line_texts = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
                     max_size=40)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.one_of(line_texts, st.sampled_from(["", " ", "\t\r", "        "])),
                      max_size=12),
       block=st.integers(1, 64), bom=st.booleans(), newline_at_end=st.booleans())
def test_the_reader_hands_on_every_line_whatever_the_block_size(
        lines: list[str], block: int, bom: bool, newline_at_end: bool) -> None:
    """Lines longer than a block, blank lines, a byte-order mark and a missing final newline:
    the reader's blocks, read into one buffer each, give each line once with its number."""
    from io import BytesIO

    from dissensus.warehouse.readers import read_jsonl

    data = (b"\xef\xbb\xbf" if bom else b"") + "\n".join(lines).encode("utf-8")
    if newline_at_end and lines:
        data += b"\n"
    got = [(number, raw.removesuffix("\n"))
           for chunk in read_jsonl(BytesIO(data), chunk_bytes=block)
           for number, raw in zip(chunk.table["_line"].to_pylist(),
                                  chunk.table["_raw"].to_pylist(), strict=True)]
    assert got == _reference_lines(data)
