"""The red-team catalogue of bad input, run against the real `dissensus` command.

Each case writes its input into a fresh folder, runs the command line as a user would (a
subprocess of ``python -m dissensus.analytics.cli``), then reads the case's warehouse. One line
per case:

* ``clear``: yes when the command ended without a traceback (and did not hang), and either
  accepted the file (bad rows then sit in the quarantine with a reason) or failed with an
  ``error:`` sentence on stderr;
* ``read / acc / dup / quar``: the ingest batches' counts (``-`` when nothing was ingested);
* ``lost``: rows of the input neither accepted, counted as duplicates nor quarantined (a file
  refused as a whole with an error counts as refused, not lost), plus rows stored wrongly or
  with a field dropped unreported, where the case checks that (reviewer ids lost to a
  byte-order mark, NaN stored, a white-space text stored, a guess between two values of one
  key, a column dropped without a word, a raw reviewer id kept in a pseudonymised quarantine).

Usage::

    .venv/bin/python benchmarks/redteam.py            # the whole catalogue
    .venv/bin/python benchmarks/redteam.py --only bom # cases whose name contains 'bom'
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 60


def row(i: int, **fields: object) -> dict:
    """A valid comparison ``i``."""
    return {"reviewer_id": f"r{i % 3}", "choice": "ab"[i % 2], "prompt": f"prompt {i}",
            "response_a": f"A{i}", "response_b": f"B{i}", **fields}


def jsonl(lines: list[dict | str]) -> bytes:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()


HEADER = "reviewer_id,choice,prompt,response_a,response_b"


@dataclass
class Case:
    """One bad input: ``make(folder)`` writes it and returns the command's arguments (after
    ``--db``); ``rows`` is the number of data rows in it; ``check(con)`` may name a row stored
    wrongly; ``db`` names the warehouse (default: a new file in the folder)."""

    name: str
    make: Callable[[Path], list[str]]
    rows: int = 0
    check: Callable[[duckdb.DuckDBPyConnection], int] | None = None
    db: Callable[[Path], Path] | None = None
    file_limit: int | None = None
    before: Callable[[Path, Path], None] | None = None
    #: the command must fail with a sentence (exit 0 is then not a clear answer)
    expect_error: bool = False
    #: text whose presence on stdout means the answer was wrong (e.g. "NaN")
    bad_output: str | None = None
    #: rows in a data file named by --db: lost if the command changes that file
    db_rows: int = 0
    #: a command that only reads must not leave a new (empty) warehouse behind
    must_not_create: bool = False


@dataclass
class Outcome:
    case: Case
    clear: bool
    counts: tuple[int, int, int, int] | None
    lost: int
    note: str = ""
    stderr: str = field(default="", repr=False)


def write(folder: Path, name: str, data: bytes) -> str:
    (folder / name).write_bytes(data)
    return str(folder / name)


def ingest(name: str, data: bytes, *extra: str) -> Callable[[Path], list[str]]:
    return lambda folder: ["ingest", *extra, write(folder, name, data)]


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def null_reviewers(con: duckdb.DuckDBPyConnection) -> int:
    """Rows stored without a reviewer id although the input named one."""
    return int(con.execute("SELECT count(*) FROM comparisons WHERE NOT has_reviewer")
               .fetchall()[0][0])


def non_finite(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM comparisons WHERE NOT isfinite(strength) "
                           "OR NOT isfinite(seconds_spent)").fetchall()[0][0])


def raw_ids(con: duckdb.DuckDBPyConnection) -> int:
    """Quarantined rows that still hold the raw reviewer id of a pseudonymised ingest."""
    return int(con.execute("SELECT count(*) FROM quarantine WHERE raw LIKE '%alice%'")
               .fetchall()[0][0])


def blank_texts(con: duckdb.DuckDBPyConnection) -> int:
    """Texts stored although they are only white space (tabs, newlines, no-break spaces)."""
    return int(con.execute(r"SELECT count(*) FROM texts WHERE regexp_full_match(body, "
                           r"'[\s\pZ\x{feff}]*')").fetchall()[0][0])


def any_stored(con: duckdb.DuckDBPyConnection) -> int:
    """Rows stored where none should be (a guess between two values of one key)."""
    return int(con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0])


def unreported_mood(con: duckdb.DuckDBPyConnection) -> int:
    """Rows whose column 'mood' was dropped without the batch saying so."""
    notes = con.execute("SELECT string_agg(coalesce(notes, ''), ' ') FROM ingest_batches"
                        ).fetchall()[0][0] or ""
    return 0 if "mood" in notes else any_stored(con)


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


GOOD = jsonl([row(i) for i in range(200)])
GOOD_GZ = gz(GOOD)


def catalogue() -> list[Case]:
    """Every case: bad rows, bad files, bad warehouses, bad arguments."""
    cases = [
        Case("jsonl: not JSON, cut-off line, array, null, text", ingest("a.jsonl", jsonl(
            [row(1), "{", '{"reviewer_id": "r1", "choice": "a', "[1, 2]", "null", '"x"'])), 6),
        Case("jsonl: object where a text belongs", ingest("a.jsonl", jsonl(
            [row(1, prompt={"text": "p"}), row(2, response_a=[1, 2])])), 2),
        Case("jsonl: bad and missing choice", ingest("a.jsonl", jsonl(
            [row(1, choice="sideways"), row(2, choice=""), {k: v for k, v in row(3).items()
                                                             if k != "choice"}])), 3),
        Case("jsonl: empty and white-space texts", ingest("a.jsonl", jsonl(
            [row(1, prompt=""), row(2, prompt="\t\n"), row(3, response_a="\u00a0"),
             row(4, response_b=" \u2003 "), row(5, prompt="\ufeff")])), 5, blank_texts),
        Case("jsonl: NaN / Infinity strings", ingest("a.jsonl", jsonl(
            [row(1, strength="NaN"), row(2, seconds_spent="Infinity"),
             row(3, strength="-Infinity"), row(4, seconds_spent="nan")])), 4, non_finite),
        Case("jsonl: 1e400 and bare NaN", ingest("a.jsonl", jsonl(
            [json.dumps(row(1))[:-1] + ', "strength": 1e400}',
             json.dumps(row(2))[:-1] + ', "seconds_spent": NaN}'])), 2, non_finite),
        Case("jsonl: negative seconds, bad time, bad shown_first", ingest("a.jsonl", jsonl(
            [row(1, seconds_spent=-3), row(2, created_at="soon"), row(3, shown_first="left"),
             row(4, gold_choice="maybe"), row(5, strength="lots")])), 5),
        Case("jsonl: duplicate key, different values", ingest("a.jsonl", jsonl(
            [json.dumps(row(2))[:-1] + ', "choice": "b"}'])), 1, any_stored),  # chose a
        Case("jsonl: duplicate key, same value", ingest("a.jsonl", jsonl(
            [json.dumps(row(1))[:-1] + ', "choice": "b"}'])), 1),  # row 1 chose b
        Case("jsonl: reviewer_ key with a quote", ingest("a.jsonl", jsonl(
            [row(1, **{'reviewer_"x': "1"})])), 1),
        Case("jsonl: bare reviewer_ key", ingest("a.jsonl", jsonl([row(1, reviewer_="1")])), 1),
        Case("jsonl: byte-order mark", ingest("a.jsonl", b"\xef\xbb\xbf" + jsonl(
            [row(1), row(2)])), 2, null_reviewers),
        Case("jsonl: invalid UTF-8 line", ingest("a.jsonl", jsonl([row(1)]) + b'{"x": "\xff"}\n'),
             2),
        Case("jsonl: blank lines and CRLF", ingest("a.jsonl", jsonl([row(1)]).replace(
            b"\n", b"\r\n") + b"\n\n  \n" + jsonl([row(2)])), 2),
        Case("jsonl: same reply twice", ingest("a.jsonl", jsonl(
            [row(1, response_b="A1")])), 1),
        Case("jsonl: conflicting comparison_id", ingest("a.jsonl", jsonl(
            [row(1, comparison_id="c1"), row(2, comparison_id="c1")])), 2),
        Case("jsonl: unknown text id", ingest("a.jsonl", jsonl(
            [{**row(1), "prompt": None, "prompt_id": "never"}])), 1),
        Case("jsonl: unknown columns", ingest("a.jsonl", jsonl([row(1, mood="calm")])), 1,
             unreported_mood),
        Case("jsonl: exact duplicate rows", ingest("a.jsonl", jsonl([row(1), row(1)])), 2),
        Case("csv: byte-order mark", ingest("a.csv", b"\xef\xbb\xbf" + (
            HEADER + "\nalice,a,p,x,y\nbob,b,q,x,y\n").encode()), 2, null_reviewers),
        Case("csv: ragged row", ingest("a.csv", (
            HEADER + "\nr1,a,p,x,y\nr1,a,p,x\nr2,b,q,x,y,extra\n").encode()), 3),
        Case("csv: unknown column", ingest("a.csv", (
            HEADER + ",mood\nr1,a,p,x,y,calm\n").encode()), 1, unreported_mood),
        Case("csv: repeated column", ingest("a.csv", (
            HEADER + ",choice\nr1,a,p,x,y,b\n").encode()), 1, any_stored, expect_error=True),
        Case("csv: nan and inf", ingest("a.csv", (
            HEADER + ",strength,seconds_spent\nr1,a,p,x,y,nan,\nr2,b,q,x,y,,inf\n").encode()),
             2, non_finite),
        Case("csv: invalid UTF-8", ingest("a.csv", (HEADER + "\nr1,a,p,x,y\n").encode()
                                           + b"r2,b,\xff,x,y\n"), 2),
        Case("tsv: tabs", ingest("a.tsv", (HEADER.replace(",", "\t")
                                            + "\nr1\ta\tp\tx\ty\n").encode()), 1),
        Case("parquet: struct column", ingest("a.parquet", parquet_bytes(pa.table({
            "reviewer_id": ["r1", "r2"], "choice": ["a", "b"], "prompt": [{"t": "p"}, None],
            "response_a": ["x", "x"], "response_b": ["y", "y"]}))), 2),
        Case("parquet: NaN and inf", ingest("a.parquet", parquet_bytes(pa.table({
            "reviewer_id": ["r1", "r2"], "choice": ["a", "b"], "prompt": ["p", "q"],
            "response_a": ["x", "x"], "response_b": ["y", "y"],
            "strength": [float("nan"), 1.0], "seconds_spent": [2.0, float("inf")]}))),
             2, non_finite),
        Case("parquet: not UTF-8 bytes", ingest("a.parquet", parquet_bytes(pa.table({
            "reviewer_id": ["r1"], "choice": ["a"], "prompt": pa.array([b"\xff"], pa.binary()),
            "response_a": ["x"], "response_b": ["y"]}))), 1),
        Case("parquet: not a Parquet file", ingest("a.parquet", b"PAR1 nonsense"), 0),
        Case("gzip: truncated", ingest("a.jsonl.gz", GOOD_GZ[: len(GOOD_GZ) // 2]), 0),
        Case("gzip: corrupt mid-stream", ingest("a.jsonl.gz", GOOD_GZ[:30] + b"\xff" * 30
                                                + GOOD_GZ[60:]), 0),
        Case("gzip: good, then a bad file, then a good one", lambda f: [
            "ingest", write(f, "1.jsonl.gz", gz(jsonl([row(1)]))),
            write(f, "2.jsonl.gz", GOOD_GZ[:40]), write(f, "3.jsonl", jsonl([row(3)]))], 2),
        Case("file: empty", ingest("a.jsonl", b""), 0),
        Case("file: missing", lambda f: ["ingest", str(f / "nope.jsonl")], 0),
        Case("file: a folder", lambda f: ["ingest", str(f)], 0),
        Case("file: named pipe", lambda f: (os.mkfifo(f / "p"), ["ingest", str(f / "p")])[1],
             0),
        Case("file: symlink loop", lambda f: ((f / "l").symlink_to(f / "l"),
                                              ["ingest", str(f / "l")])[1], 0),
        Case("file: dangling symlink", lambda f: ((f / "d").symlink_to(f / "gone"),
                                                  ["ingest", str(f / "d")])[1], 0),
        Case("file: unknown format name", ingest("a.jsonl", jsonl([row(1)]), "--format", "xml"),
             expect_error=True),
        Case("file: unknown content", ingest("a.dat", b"hello world\n"), 0),
        Case("salt: quarantine keeps no raw id", ingest("a.jsonl", jsonl(
            [row(1, reviewer_id="alice"), row(2, reviewer_id="alice", choice="?"),
             '{"reviewer_id": "alice", ']), "--pseudonymise-salt", "s"), 3, raw_ids),
        Case("db: --db is a data file", lambda f: [
            "ingest", write(f, "a.jsonl", jsonl([row(1)]))], 1,
             db=lambda f: Path(write(f, "data.jsonl", GOOD)), expect_error=True, db_rows=200),
        Case("db: empty 0-byte file", lambda f: ["ingest", write(f, "a.jsonl", jsonl([row(1)]))],
             1, db=lambda f: Path(write(f, "w.duckdb", b""))),
        Case("db: demo over a data file", lambda f: ["demo", "--n", "100", "--no-fit"],
             db=lambda f: Path(write(f, "data.jsonl", GOOD)), expect_error=True, db_rows=200),
        Case("db: status on a missing warehouse", lambda f: ["status"], expect_error=True,
             must_not_create=True),
        Case("db: fit on a missing warehouse", lambda f: ["fit"], expect_error=True,
             must_not_create=True),
        Case("db: full disk during ingest", lambda f: ["ingest", write(f, "big.jsonl", jsonl(
            [row(i, prompt=f"p{i} " + "x" * 400, response_a="a" * 400 + str(i))
             for i in range(20_000)]))], 0, file_limit=400_000),
        Case("args: reviewers --limit -1", lambda f: ["reviewers", "--limit", "-1"],
             before=lambda f, db: _seed(f, db), expect_error=True),
        Case("args: reviewers --school 9", lambda f: ["reviewers", "--school", "9"],
             before=lambda f, db: _seed(f, db), expect_error=True),
        Case("args: quarantine export to a missing folder", lambda f: [
            "quarantine", "--export", str(f / "none" / "q.csv")],
             before=lambda f, db: _seed(f, db)),
        Case("args: serve --host 0.0.0.0 without sign-in", lambda f: [
            "serve", "--host", "0.0.0.0", "--port", "18599"], expect_error=True),
        Case("one reviewer: audit", lambda f: ["reviewers", "--format", "json"],
             before=lambda f, db: _seed(f, db, one=True), bad_output='"verdict": "ok"'),
        Case("only ties: train", lambda f: ["train", "--encoder", "hashing"],
             before=lambda f, db: _seed(f, db, ties=True), expect_error=True),
    ]
    return cases


def _seed(folder: Path, db: Path, one: bool = False, ties: bool = False) -> None:
    rows = [row(i % 10, reviewer_id="solo" if one else f"r{i % 4}",
                choice="tie" if ties else "ab"[i % 2]) for i in range(40)]
    _run(db, ["ingest", write(folder, "seed.jsonl", jsonl(rows))], folder)


def _run(db: Path, args: list[str], cwd: Path, file_limit: int | None = None
         ) -> subprocess.CompletedProcess[str] | None:
    def limit() -> None:
        if file_limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    env = {**os.environ, "COLUMNS": "200", "DISSENSUS_LOCK_WAIT": "2"}
    try:
        return subprocess.run(
            [sys.executable, "-m", "dissensus.analytics.cli", "--db", str(db), *args],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
            preexec_fn=limit, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None


def run_case(case: Case) -> Outcome:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        db = case.db(folder) if case.db else folder / "w.duckdb"
        if case.before:
            case.before(folder, db)
        before = _batches(db)
        db_bytes = db.read_bytes() if case.db_rows and db.exists() else None
        existed = db.exists()
        args = case.make(folder)
        result = _run(db, args, folder, case.file_limit)
        if result is None:
            return Outcome(case, False, None, case.rows, "hung")
        clean = "Traceback" not in result.stderr + result.stdout
        worded = (result.returncode == 0 and not case.expect_error) \
            or "error:" in result.stderr or "Invalid value" in result.stderr
        if case.bad_output and case.bad_output in result.stdout:
            worded = False
        counts = _batches(db)
        if counts is not None and before is not None:
            counts = tuple(a - b for a, b in zip(counts, before, strict=True))  # type: ignore[assignment]
        lost, note = 0, ""
        if counts is not None and any(counts):
            read, acc, dup, quar = counts
            lost = max(case.rows - (acc + dup + quar), 0) + abs(read - (acc + dup + quar))
            if case.check is not None:
                wrong = _check(db, case.check)
                lost += wrong
                note = f"{wrong} stored wrongly or dropped unreported" if wrong else ""
        elif case.rows and result.returncode == 0:
            lost = case.rows  # "accepted" yet nothing stored: the worst kind of loss
            note = "exit 0 but nothing stored"
            worded = False
        elif result.returncode != 0:
            note = "refused with an error"
        if case.must_not_create and not existed and db.exists():
            worded = False
            note = "created an empty warehouse"
        if db_bytes is not None and (not db.exists() or db.read_bytes() != db_bytes):
            lost += case.db_rows
            note = f"the data file named by --db was replaced ({case.db_rows} rows)"
        return Outcome(case, clean and worded, counts if counts and any(counts) else None,
                       lost, note, result.stderr)


def _batches(db: Path) -> tuple[int, int, int, int] | None:
    if not db.exists() or db.stat().st_size == 0 or db.read_bytes()[8:12] != b"DUCK":
        return None
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        row_ = con.execute(
            "SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_accepted), 0), "
            "coalesce(sum(rows_duplicate), 0), coalesce(sum(rows_quarantined), 0) "
            "FROM ingest_batches").fetchall()[0]
        return tuple(int(v) for v in row_)  # type: ignore[return-value]
    except duckdb.Error:
        return None
    finally:
        con.close()


def _check(db: Path, check: Callable[[duckdb.DuckDBPyConnection], int]) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return check(con)
    finally:
        con.close()


def run_concurrency(n_writers: int = 5, rows_each: int = 200) -> Outcome:
    """``n_writers`` ingests started at once on one warehouse while a dashboard-like reader
    opens it read-only for one query at a time: every ingest must succeed and every row count."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        db = folder / "w.duckdb"
        _seed(folder, db)
        stop = threading.Event()
        reads = [0, 0]  # done, refused while a writer held the file

        def reader() -> None:
            while not stop.is_set():
                try:
                    con = duckdb.connect(str(db), read_only=True)
                    con.execute("SELECT count(*) FROM comparisons").fetchall()
                    con.close()
                    reads[0] += 1
                except duckdb.Error:
                    reads[1] += 1
                time.sleep(0.02)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        env = {**os.environ, "COLUMNS": "200"}
        procs = [subprocess.Popen(
            [sys.executable, "-m", "dissensus.analytics.cli", "--db", str(db), "ingest",
             write(folder, f"w{k}.jsonl", jsonl([row(10_000 * (k + 1) + i)
                                                 for i in range(rows_each)]))],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k in range(n_writers)]
        results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
        stop.set()
        thread.join()
        failed = sum(rc != 0 for rc, _ in results)
        clear = all("Traceback" not in err for _, err in results)
        counts = _batches(db)
        expected = n_writers * rows_each + 40  # and the 40 seed rows
        stored = sum(counts[1:]) if counts else 0  # accepted + duplicates + quarantined
        note = (f"{failed} of {n_writers} ingests failed; {reads[0]} reads done, "
                f"{reads[1]} refused while written")
        case = Case(f"concurrency: {n_writers} ingests + reader", lambda f: [], expected)
        return Outcome(case, clear and failed == 0, counts, max(expected - stored, 0), note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--show-errors", action="store_true", help="print each case's stderr")
    options = parser.parse_args()
    cases = [c for c in catalogue() if options.only in c.name]
    print(f"{'case':<48} {'clear':<5} {'read/acc/dup/quar':<18} {'lost':>4}  note")
    outcomes = []
    runs: list[Callable[[], Outcome]] = [lambda c=c: run_case(c) for c in cases]
    if options.only in "concurrency":
        runs.append(run_concurrency)
    for run in runs:
        outcome = run()
        case = outcome.case
        outcomes.append(outcome)
        counts = "/".join(str(v) for v in outcome.counts) if outcome.counts else "-"
        print(f"{case.name:<48} {'yes' if outcome.clear else 'NO':<5} {counts:<18} "
              f"{outcome.lost:>4}  {outcome.note}", flush=True)
        if options.show_errors and outcome.stderr:
            print("    " + outcome.stderr.strip().replace("\n", "\n    "))
    clear = sum(o.clear for o in outcomes)
    lost = sum(o.lost for o in outcomes)
    read = sum(o.counts[0] for o in outcomes if o.counts)
    print(f"\ntotal: {len(outcomes)} cases, clear error or clean ingest in {clear} "
          f"({len(outcomes) - clear} not), {read} rows read, {lost} rows lost")


if __name__ == "__main__":
    main()
