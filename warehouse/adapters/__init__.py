"""Adapters: readers that turn public data sets into the contract's staged chunks.

Each adapter has a ``read(path, chunk_rows)`` that yields staged chunks (see
:mod:`warehouse.adapters._common` for the layout) and a ``sniff(path)`` that returns a short
reason when ``path`` is in its format, else None. :func:`warehouse.adapters.detect.detect_format`
tries the sniffers in the order of :data:`ADAPTERS` before the canonical JSONL / CSV / Parquet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from dissensus.warehouse.adapters import (
    argilla,
    bluebirds,
    hh_rlhf,
    label_studio,
    snow2008_rte,
    snow2008_temp,
    ukpconvarg1,
)
from dissensus.warehouse.adapters._common import (
    ERROR_COLUMN,
    SOURCE_COLUMN,
    STAGED_COLUMNS,
    STAGED_SCHEMA,
)


@dataclass(frozen=True)
class Adapter:
    """A public data set format: its name, what it is, its reader and its sniffer."""

    name: str
    description: str
    read: Callable[[Path, int], Iterator[pa.Table]]
    sniff: Callable[[Path], str | None]


ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (
        Adapter(
            ukpconvarg1.NAME,
            ukpconvarg1.DESCRIPTION,
            ukpconvarg1.read_ukpconvarg1,
            ukpconvarg1.sniff_ukpconvarg1,
        ),
        Adapter(hh_rlhf.NAME, hh_rlhf.DESCRIPTION, hh_rlhf.read_hh_rlhf, hh_rlhf.sniff_hh_rlhf),
        Adapter(
            snow2008_rte.NAME,
            snow2008_rte.DESCRIPTION,
            snow2008_rte.read_snow2008_rte,
            snow2008_rte.sniff_snow2008_rte,
        ),
        Adapter(
            snow2008_temp.NAME,
            snow2008_temp.DESCRIPTION,
            snow2008_temp.read_snow2008_temp,
            snow2008_temp.sniff_snow2008_temp,
        ),
        Adapter(
            bluebirds.NAME,
            bluebirds.DESCRIPTION,
            bluebirds.read_bluebirds,
            bluebirds.sniff_bluebirds,
        ),
        Adapter(
            label_studio.NAME,
            label_studio.DESCRIPTION,
            label_studio.read_label_studio,
            label_studio.sniff_label_studio,
        ),
        Adapter(argilla.NAME, argilla.DESCRIPTION, argilla.read_argilla, argilla.sniff_argilla),
    )
}

__all__ = [
    "ADAPTERS",
    "ERROR_COLUMN",
    "SOURCE_COLUMN",
    "STAGED_COLUMNS",
    "STAGED_SCHEMA",
    "Adapter",
]
