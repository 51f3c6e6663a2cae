"""Writing a simulated world to disk: the input file plus the ground truth beside it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Final

from dissensus.warehouse.demo.world import DemoWorld

FORMATS: Final = ("jsonl", "csv", "parquet")


def write_world(
    world: DemoWorld, directory: Path, fmt: str = "jsonl", compress: bool = False
) -> dict[str, Path]:
    """Write ``comparisons.<fmt>[.gz]`` and the truth files into ``directory``.

    Truth: ``truth_reviewers.parquet``, ``truth_pairs.parquet``, ``truth_judgments.parquet``,
    ``truth_responses.parquet`` and ``world.json`` (config and school names). ``compress``
    gzips JSONL and CSV (Parquet is always zstd-compressed inside). Returns the paths by name:
    ``comparisons``, ``reviewers``, ``pairs``, ``judgments``, ``responses``, ``world``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    gzip = compress and fmt != "parquet"
    comparisons = directory / f"comparisons.{fmt}{'.gz' if gzip else ''}"
    compression = "gzip" if gzip else "uncompressed"
    if fmt == "jsonl":
        world.comparisons.write_ndjson(comparisons, compression=compression)
    elif fmt == "csv":
        world.comparisons.write_csv(comparisons, compression=compression)
    else:
        world.comparisons.write_parquet(comparisons)
    paths = {"comparisons": comparisons}
    for name in ("reviewers", "pairs", "judgments", "responses"):
        paths[name] = directory / f"truth_{name}.parquet"
        getattr(world, name).write_parquet(paths[name])
    paths["world"] = directory / "world.json"
    meta = {"config": asdict(world.config), "schools": world.schools, "format": fmt}
    paths["world"].write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return paths
