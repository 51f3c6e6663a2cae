"""Find out which format an input file is in, and say why.

The adapters' sniffers go first (they look at headers and neighbouring files, so they can tell a
public data set from a generic CSV or JSONL); then the canonical formats by extension
(``.jsonl``/``.ndjson``/``.json``, ``.csv``/``.tsv``, each optionally ``.gz``; ``.parquet``/
``.pq``) and, for an unknown extension, by content.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Final

from dissensus.warehouse.adapters import ADAPTERS
from dissensus.warehouse.adapters._common import GZIP_MAGIC, first_line
from dissensus.warehouse.errors import InputFileError, UnknownFormatError

CANONICAL: Final = ("jsonl", "csv", "parquet")
EXTENSIONS: Final = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
PARQUET_MAGIC: Final = b"PAR1"
EXPECTED: Final = (
    "one of the canonical formats -- JSON Lines (.jsonl, .ndjson, .json), CSV or TSV (.csv, "
    ".tsv), each optionally gzipped (.gz), or Parquet (.parquet) -- or a data set an adapter "
    "knows: " + ", ".join(ADAPTERS)
)


def _head(path: Path, size: int = 4) -> bytes:
    with path.open("rb") as handle:
        head = handle.read(size)
    if head[:2] == GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as handle:
                return handle.read(size)
        except (OSError, EOFError, zlib.error):
            return b""
    return head


def _by_extension(path: Path) -> tuple[str, str] | None:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in EXTENSIONS:
        return None
    name = EXTENSIONS[suffixes[-1]]
    if name == "parquet" and gzipped:
        return None
    ending = suffixes[-1] + (".gz" if gzipped else "")
    kinds = {
        "jsonl": "JSON Lines, one comparison per line",
        "csv": "delimited text with a header, one comparison per row",
        "parquet": "Parquet, one comparison per row",
    }
    return name, f"the file name ends in {ending}: {kinds[name]}"


def _by_content(path: Path) -> tuple[str, str] | None:
    if _head(path) == PARQUET_MAGIC:
        return "parquet", "the file starts with the Parquet magic bytes PAR1"
    line = first_line(path)
    if line is None:
        return None
    stripped = line.lstrip()
    if stripped.startswith("{"):
        return "jsonl", "the first line is a JSON object: JSON Lines, one comparison per line"
    for separator, label in ((",", "commas"), ("\t", "tabs")):
        fields = [field.strip().strip('"') for field in line.split(separator)]
        if len(fields) > 1 and "choice" in fields:
            return "csv", f"the first line is a header separated by {label} naming 'choice'"
    return None


def detect_format(path: Path) -> tuple[str, str]:
    """The format name of ``path`` (an adapter name or jsonl/csv/parquet) and why.

    Raises :class:`~warehouse.errors.InputFileError` when ``path`` does not exist and
    :class:`~warehouse.errors.UnknownFormatError` when no format fits.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(
            "the input does not exist",
            where=str(path),
            expected="a file (or a data set folder) to ingest",
            fix="check the path and that the file was copied completely",
        )
    for adapter in ADAPTERS.values():
        reason = adapter.sniff(path)
        if reason is not None:
            return adapter.name, reason
    if path.is_dir():
        raise UnknownFormatError(
            "no adapter recognises this folder",
            where=str(path),
            expected=EXPECTED,
            fix="point at a single file, or at the folder of a data set an adapter knows",
        )
    found = _by_extension(path) or _by_content(path)
    if found is not None:
        return found
    raise UnknownFormatError(
        f"the format of {path.name} is not recognised (neither its name nor its first bytes "
        "match a known format)",
        where=str(path),
        expected=EXPECTED,
        fix="rename the file with the extension of its format (e.g. comparisons.jsonl), or "
        "convert it to JSON Lines with the columns reviewer_id, choice, prompt, response_a, "
        "response_b",
    )
