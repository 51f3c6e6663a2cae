"""Ingest speed and memory against DuckDB's own ``read_json`` of the same file (the floor).

Generates a demo-world JSONL file, then in the same run, each in a fresh subprocess so that peak
RSS is measured per method:

1. ``floor``: ``CREATE TABLE t AS SELECT * FROM read_json(file)`` into a new DuckDB file;
2. ``dissensus``: the full lossless ingest (validation, content hashing, quarantine, dedupe,
   normalised tables) into a new warehouse.

Prints rows/s, seconds, the ratio dissensus / floor and peak RSS. Usage:

    .venv/bin/python benchmarks/ingest.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
method, source, target = sys.argv[1:4]
start = time.perf_counter()
if method == "floor":
    import duckdb
    con = duckdb.connect(target)
    con.execute(
        f"CREATE TABLE t AS SELECT * FROM read_json('{source}', format='newline_delimited')"
    )
    rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    con.close()
else:
    from dissensus.warehouse.db import connect
    from dissensus.warehouse.ingest import ingest_file
    con = connect(target)
    report = ingest_file(con, source, fmt="jsonl")
    rows = report.rows_read
    assert report.accepted + report.duplicates + report.quarantined == rows
    con.close()
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mib": peak_kib / 1024}))
"""


def run_child(method: str, source: Path, target: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, method, str(source), str(target)],
        check=True, capture_output=True, text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1, help="runs per method (best is kept)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    from dissensus.warehouse.demo import WorldConfig, simulate_world, write_world

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dissensus-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    world = simulate_world(WorldConfig(n_comparisons=args.rows, seed=1))
    source = write_world(world, workdir, fmt="jsonl")["comparisons"]
    del world
    print(f"generated {args.rows:,} comparisons in {time.perf_counter() - start:.1f} s: "
          f"{source} ({source.stat().st_size / 2**20:.0f} MiB)")
    results: dict[str, dict[str, float]] = {}
    for method in ("floor", "dissensus"):
        best: dict[str, float] | None = None
        for repeat in range(args.repeats):
            target = workdir / f"{method}-{repeat}.duckdb"
            target.unlink(missing_ok=True)
            result = run_child(method, source, target)
            if best is None or result["seconds"] < best["seconds"]:
                best = result
        assert best is not None
        results[method] = best
    floor, ours = results["floor"], results["dissensus"]
    print(f"\n{'method':<12}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak RSS MiB':>14}")
    for name, r in results.items():
        print(f"{name:<12}{r['rows']:>12,.0f}{r['seconds']:>10.2f}"
              f"{r['rows'] / r['seconds']:>12,.0f}{r['peak_mib']:>14.0f}")
    print(f"\nratio dissensus / floor: {ours['seconds'] / floor['seconds']:.2f}x "
          f"(target <= 2x); peak RSS {ours['peak_mib']:.0f} MiB (target < 2048 MiB)")


if __name__ == "__main__":
    main()
