"""The real labeling sets with expert gold that the benchmarks score reviewers against.

Each is ingested into its own warehouse under ``workdir`` (made afresh) from ../shared/data, where
the data live beside the repository; a set that is absent is skipped with a line saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb

from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GOLD_SETS = (("snow2008_mturk", "snow2008-rte"),
             ("snow2008_mturk/temp.standardized.tsv", "snow2008-temp"),
             ("bluebirds", "bluebirds"))
"""(folder or file under the shared data, ingest format) of each set with gold labels."""


def gold_warehouses(workdir: Path) -> Iterator[tuple[str, duckdb.DuckDBPyConnection]]:
    """``(format, open connection)`` of each gold set, freshly ingested; the caller's loop body
    runs while the connection is open, and it is closed after."""
    for folder, fmt in GOLD_SETS:  # folder: or the one file of a set
        if not (DATA / folder).exists():
            print(f"skip {folder}: {DATA / folder} absent")
            continue
        db = workdir / f"{fmt}.duckdb"
        db.unlink(missing_ok=True)
        con = connect(db)
        try:
            ingest_file(con, DATA / folder, fmt=fmt)
            yield fmt, con
        finally:
            con.close()
