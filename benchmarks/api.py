"""The API's front door: POST rows/s with 1, 8 and 32 clients against CLI ingest of the same rows,
and read latency (p50 / p99) of ``GET /v1/reviewers`` and ``/v1/reviewers/{id}`` on a warehouse
with a fit, with the server's memory.

Everything runs in one invocation, against real servers (``dissensus api`` in a subprocess on a
free port) and the real command:

1. **POST**: a demo-world JSONL file is cut into NDJSON bodies of ``--batch`` rows. The CLI's
   ingest takes the whole file into a fresh warehouse, in a fresh process, timed from the call
   until its batch is committed (see :func:`cli_ingest`; ``dissensus ingest`` is also run and
   its printed time shown beside). Then, for each client count, a fresh warehouse and server
   take the same bodies from that many concurrent clients (threads in this process, each
   posting its share in turn); rows/s = rows / wall time from the first post to the last answer.
2. **GET**: a demo-world warehouse of ``--read-rows`` comparisons is built and fitted with the
   CLI (or ``--read-db`` is copied), then served: the first ``/v1/reviewers`` (cold: the audit is
   computed), ``--requests`` pages at random offsets (warm: cached per warehouse version), the
   report cards of ``--cards`` random reviewers (each computed on its first request) and the same
   cards again (warm).

Server memory is the peak RSS (``VmHWM``) of the server process. Usage:

    .venv/bin/python benchmarks/api.py --post-rows 100000 --read-rows 200000
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dissensus.analytics.api.client import Server, dissensus, start_server
from dissensus.analytics.api.service import CHECKPOINT_THRESHOLD


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of a process (Linux ``VmHWM``), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def world_file(rows: int, seed: int, folder: Path) -> Path:
    """A demo-world comparisons JSONL of ``rows`` rows."""
    from dissensus.warehouse.demo import WorldConfig, simulate_world, write_world

    world = simulate_world(WorldConfig(n_comparisons=rows, seed=seed))
    return write_world(world, folder, fmt="jsonl")["comparisons"]


def bodies(source: Path, batch: int) -> list[bytes]:
    """The file's lines as NDJSON bodies of ``batch`` rows."""
    lines = source.read_bytes().splitlines(keepends=True)
    return [b"".join(lines[i:i + batch]) for i in range(0, len(lines), batch)]


CLI_CHILD = r"""
import sys, time
from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file
con = connect(sys.argv[2])
if sys.argv[3] != "-":  # the server's policy: checkpoint later, not at this commit
    con.execute(f"SET checkpoint_threshold = '{sys.argv[3]}'")
start = time.perf_counter()
report = ingest_file(con, sys.argv[1], fmt="jsonl", refresh_index=False)
print(time.perf_counter() - start, report.seconds)
"""


def cli_committed(source: Path, db: Path, checkpoint_threshold: str = "-") -> tuple[float, float]:
    """(seconds from the ingest's call until its batch is committed, seconds it reports), in a
    fresh process; ``checkpoint_threshold`` other than '-' sets DuckDB's for that process."""
    out = subprocess.run([sys.executable, "-c", CLI_CHILD, str(source), str(db),
                          checkpoint_threshold],
                         capture_output=True, text=True, check=False, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    committed, reported = (float(v) for v in out.stdout.split()[-2:])
    return committed, reported


def cli_ingest(source: Path, db: Path) -> tuple[float, float, float]:
    """(seconds until the batch is committed, batch seconds as the command reports them, wall
    seconds of ``dissensus ingest``).

    The first is the yardstick for the API: the function the command runs, in a fresh process,
    timed from its call until the batch is committed. The API's wall time includes every commit,
    while the time the command prints stops before its commit; neither counts the vote-index
    rebuild (the API defers it until the posts pause) nor the interpreter's start-up."""
    committed, reported = cli_committed(source, db)
    again = db.with_name(db.stem + "-command.duckdb")
    started = time.perf_counter()
    command = dissensus(again, "ingest", str(source), timeout=3600)
    wall = time.perf_counter() - started
    if command.returncode != 0:
        raise SystemExit(command.stderr)
    found = re.search(r"quarantined in ([0-9.]+) s", command.stdout.replace("\n", " "))
    return committed, (float(found.group(1)) if found else reported), wall


def post_all(server: Server, payloads: list[bytes], clients: int) -> tuple[float, int]:
    """Post every body from ``clients`` concurrent clients; (wall seconds, rows accepted)."""
    shares = [payloads[i::clients] for i in range(clients)]

    def client(share: list[bytes]) -> int:
        accepted = 0
        for body in share:
            answer = server.request("POST", "/v1/comparisons", body,
                                    content_type="application/x-ndjson", timeout=3600)
            if answer.status != 200:
                raise SystemExit(f"POST failed: {answer.status} {answer.body}")
            accepted += answer.body["accepted"]
        return accepted

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        accepted = sum(pool.map(client, shares))
    return time.perf_counter() - started, accepted


def quantiles(seconds: list[float]) -> str:
    """p50 / p99 / max in milliseconds."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms ({len(ordered)} requests)")


def timed(server: Server, path: str) -> float:
    started = time.perf_counter()
    answer = server.get(path, timeout=600)
    if answer.status != 200:
        raise SystemExit(f"GET {path} failed: {answer.status} {answer.body}")
    return time.perf_counter() - started


def bench_post(args: argparse.Namespace, work: Path) -> None:
    source = world_file(args.post_rows, 2, work / "post-world")
    payloads = bodies(source, args.batch)
    rows = sum(p.count(b"\n") for p in payloads)
    print(f"POST: {rows:,} demo-world rows in {len(payloads)} NDJSON bodies of {args.batch:,}")
    committed_s, batch_s, wall_s = cli_ingest(source, work / "cli.duckdb")
    deferred_s, _ = cli_committed(source, work / "cli-deferred.duckdb", CHECKPOINT_THRESHOLD)
    cli_rate = rows / committed_s
    print(f"  CLI ingest: {committed_s:.2f} s to the commit ({cli_rate:,.0f} rows/s; the "
          f"yardstick); {deferred_s:.2f} s with the server's checkpoint policy; the command "
          f"prints {batch_s:.2f} s (before its commit) and takes {wall_s:.1f} s with start-up "
          "and the vote index")
    for clients in args.clients:
        db = work / f"post-{clients}.duckdb"
        server = start_server(db)
        try:
            seconds, accepted = post_all(server, payloads, clients)
            peak = peak_rss_mib(server.process.pid)
            stored = server.comparisons()
        finally:
            server.stop()
        rate = rows / seconds
        print(f"  API, {clients:>2} client(s): {seconds:.2f} s, {rate:,.0f} rows/s "
              f"= {rate / cli_rate:.0%} of the CLI ({rate / (rows / deferred_s):.0%} of it "
              f"with the server's checkpoint policy, {rate / (rows / batch_s):.0%} of the time "
              f"the command prints); {accepted:,} accepted, "
              f"{stored:,} stored; server peak RSS {peak:,.0f} MiB")


def read_warehouse(args: argparse.Namespace, work: Path) -> Path:
    db = work / "read.duckdb"
    if args.read_db is not None:
        shutil.copy(args.read_db, db)
        for folder in args.read_db.parent.glob(args.read_db.name + ".*"):  # its fits, runs
            if folder.is_dir():
                shutil.copytree(folder, db.with_name(db.name + folder.name[len(
                    args.read_db.name):]), dirs_exist_ok=True)
        return db
    source = world_file(args.read_rows, 3, work / "read-world")
    started = time.perf_counter()
    cli_ingest(source, db)
    fit = dissensus(db, "fit", *args.fit_args.split(), timeout=7200)
    if fit.returncode != 0:
        raise SystemExit(fit.stderr)
    print(f"GET: built a {args.read_rows:,}-comparison warehouse and fitted it "
          f"(`dissensus fit {args.fit_args}`) in {time.perf_counter() - started:.0f} s")
    return db


def bench_get(args: argparse.Namespace, work: Path) -> None:
    db = read_warehouse(args, work)
    server = start_server(db)
    rng = random.Random(0)
    try:
        cold = timed(server, "/v1/reviewers?limit=100")
        first = server.get("/v1/reviewers?limit=1").body
        total = first["total"]
        print(f"  GET /v1/reviewers, first (audit computed): {cold * 1000:.0f} ms; "
              f"{total:,} reviewers")
        pages = [timed(server, f"/v1/reviewers?limit=100&offset={rng.randrange(total)}")
                 for _ in range(args.requests)]
        print(f"  GET /v1/reviewers?limit=100 warm: {quantiles(pages)}")
        ids: list[str] = []
        while len(ids) < args.cards:
            page = server.get(f"/v1/reviewers?limit=100&offset={rng.randrange(total)}").body
            ids.extend(item["reviewer_id"] for item in page["items"][:5])
        ids = ids[:args.cards]
        cards_cold = [timed(server, f"/v1/reviewers/{i}") for i in ids]
        print(f"  GET /v1/reviewers/{{id}}, first request per id: {quantiles(cards_cold)}")
        cards_warm = [timed(server, f"/v1/reviewers/{rng.choice(ids)}")
                      for _ in range(args.requests)]
        print(f"  GET /v1/reviewers/{{id}} warm: {quantiles(cards_warm)}")
        print(f"  server peak RSS {peak_rss_mib(server.process.pid):,.0f} MiB")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--post-rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000, help="rows per POST body")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--read-rows", type=int, default=200_000)
    parser.add_argument("--read-db", type=Path, default=None,
                        help="a fitted warehouse to copy instead of building one")
    parser.add_argument("--fit-args", default="--schools 1",
                        help="options of the `dissensus fit` that builds the read warehouse")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--skip", choices=("post", "get"), default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dissensus-bench-api-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.skip != "post":
        bench_post(args, work)
    if args.skip != "get":
        bench_get(args, work)


if __name__ == "__main__":
    main()
