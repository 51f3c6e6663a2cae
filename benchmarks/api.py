"""The API's front door: POST rows/s with 1, 8 and 32 clients against CLI ingest of the same rows,
and read latency (p50 / p99) of ``GET /v1/reviewers`` and ``/v1/reviewers/{id}`` on a warehouse
with a fit, with the server's memory.

Everything runs in one invocation, against real servers (``dissensus api`` in a subprocess on a
free port) and the real command:

1. **POST**: a demo-world JSONL file is cut into NDJSON bodies of ``--batch`` rows. The CLI
   ingests the whole file into a fresh warehouse (``dissensus ingest``; its own batch time is
   read from its report). Then, for each client count, a fresh warehouse and server take the
   same bodies from that many concurrent clients (threads in this process, each posting its
   share in turn); rows/s = rows / wall time from the first post to the last answer.
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
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dissensus.analytics.api.client import Server, dissensus, start_server


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


def cli_ingest(source: Path, db: Path) -> tuple[float, float]:
    """(batch seconds as the ingest reports them, wall seconds of the command)."""
    started = time.perf_counter()
    out = dissensus(db, "ingest", str(source), timeout=3600)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    found = re.search(r"quarantined in ([0-9.]+) s", out.stdout.replace("\n", " "))
    return (float(found.group(1)) if found else wall), wall


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
    batch_s, wall_s = cli_ingest(source, work / "cli.duckdb")
    cli_rate = rows / batch_s
    print(f"  CLI ingest: {batch_s:.1f} s batch ({cli_rate:,.0f} rows/s), {wall_s:.1f} s with "
          "start-up")
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
        print(f"  API, {clients:>2} client(s): {seconds:.1f} s, {rate:,.0f} rows/s "
              f"= {rate / cli_rate:.0%} of the CLI; {accepted:,} accepted, {stored:,} stored; "
              f"server peak RSS {peak:,.0f} MiB")


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
