"""Where ingest's rows come from: the input path checked, its format resolved, its chunks streamed.

Everything that can go wrong with an input *file* (as opposed to a row in it) is turned into an
:class:`~dissensus.warehouse.errors.InputFileError` here, naming the file and what to do: a
missing path, a symbolic link that leads nowhere, a named pipe (reading one would hang), an
unknown ``--format``, a gzip stream that is damaged or cut short. Rows are never dropped here;
the readers (:mod:`dissensus.warehouse.readers`) hand every row on.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import queue
import stat
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from dissensus.warehouse import readers
from dissensus.warehouse.errors import InputFileError, UnknownFormatError
from dissensus.warehouse.readers import StagedChunk

CANONICAL_FORMATS = ("jsonl", "csv", "parquet")

#: What reading a damaged or truncated gzip stream raises.
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def known_formats() -> tuple[str, ...]:
    """Every value ``--format`` takes: ``auto``, the canonical formats and the adapters."""
    from dissensus.warehouse.adapters import ADAPTERS

    return ("auto", *CANONICAL_FORMATS, *ADAPTERS)


def check_input_path(path: Path) -> None:
    """Refuse, in words, an input that is not a readable file or data-set folder."""
    try:
        info = path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InputFileError(
                f"{path} is a symbolic link that loops back on itself.",
                where=str(path),
                expected="a file, or a link that leads to one",
                fix="point the link at the data file (ls -l shows where it leads)",
            ) from error
        if path.is_symlink():
            raise InputFileError(
                f"{path} is a symbolic link to {os.readlink(path)}, which does not exist.",
                where=str(path),
                expected="a link that leads to an existing file",
                fix="point the link at the data file, or name the file itself",
            ) from error
        readers.open_maybe_gzip(path)  # raises the missing-file error
        raise
    if stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode) or stat.S_ISSOCK(info.st_mode):
        kind = "named pipe" if stat.S_ISFIFO(info.st_mode) else "device or socket"
        raise InputFileError(
            f"{path} is a {kind}, not a file: ingest reads its input more than once (to "
            "detect the format and to hash it), so a stream would hang or be read in part.",
            where=str(path),
            expected="a regular file (JSONL, CSV or Parquet, optionally .gz)",
            fix="save the stream to a file first (e.g. `cat PIPE > comparisons.jsonl`)",
        )


def resolve_format(path: Path, fmt: str) -> tuple[str, str]:
    """(format, why): the format asked for, or the detected one with the reason."""
    formats = known_formats()
    if fmt not in formats:
        raise UnknownFormatError(
            f"Unknown format '{fmt}'.",
            where=str(path),
            expected="one of " + ", ".join(formats),
            fix="pass --format auto to detect it, or one of the names above",
        )
    if fmt != "auto":
        return fmt, "as requested with --format"
    from dissensus.warehouse.adapters.detect import detect_format

    return detect_format(path)


def damaged_gzip(path: Path, error: BaseException) -> InputFileError:
    """The error for a gzip stream that is corrupt or ends early."""
    detail = str(error) or type(error).__name__
    return InputFileError(
        f"{path} is a damaged gzip file ({detail}); nothing from it was stored.",
        where=str(path),
        expected="a complete gzip stream (`gzip -t FILE` checks one)",
        fix="copy or download the file again; if only its end is missing, "
        "`zcat FILE > part.jsonl` keeps the readable part to ingest",
    )


def _guarded(chunks: Iterator[StagedChunk], path: Path) -> Iterator[StagedChunk]:
    try:
        yield from chunks
    except GZIP_ERRORS as error:
        raise damaged_gzip(path, error) from error


def _hash_path(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as handle:
            while block := handle.read(8 * 1024 * 1024):
                digest.update(block)
                total += len(block)
    return digest.hexdigest(), total


def chunks_for(
    path: Path, fmt: str, chunk_rows: int
) -> tuple[Iterator[StagedChunk], Callable[[], tuple[str, int]]]:
    """The chunk stream of a file and a function giving (sha256, bytes) once it is consumed."""
    if fmt in ("jsonl", "csv"):
        hashing = readers.HashingReader(readers.open_maybe_gzip(path))
        if fmt == "jsonl":
            stream: Iterator[StagedChunk] = readers.read_jsonl(hashing)  # type: ignore[arg-type]
        else:
            stream = readers.read_csv(hashing, chunk_rows, str(path))  # type: ignore[arg-type]

        def finished() -> tuple[str, int]:
            try:
                while hashing.read(8 * 1024 * 1024):
                    pass
            except GZIP_ERRORS as error:
                raise damaged_gzip(path, error) from error
            return hashing.sha256.hexdigest(), hashing.bytes_read

        return _guarded(stream, path), finished
    if not path.exists():
        readers.open_maybe_gzip(path)  # raises the missing-file error
    digest = _hash_path(path)
    if fmt == "parquet":
        return readers.read_parquet(path, chunk_rows), lambda: digest
    from dissensus.warehouse.adapters import ADAPTERS

    adapter = ADAPTERS[fmt]
    return (
        _guarded((StagedChunk(table, "columns") for table in adapter.read(path, chunk_rows)),
                 path),
        lambda: digest,
    )


def prefetched(chunks: Iterator[StagedChunk]) -> Iterator[StagedChunk]:
    """Read the next chunk in a thread while DuckDB works on the current one.

    Both the reader (numpy, Arrow, file I/O) and DuckDB release the GIL, so on two cores this
    hides most of the reading time. Errors in the reader are re-raised here, in order.
    """
    pending: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(message: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                pending.put(message, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(("chunk", chunk)):
                    return
            put(("done", None))
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(("error", error))

    thread = threading.Thread(target=produce, name="dissensus-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = pending.get()
            if kind == "done":
                break
            if kind == "error":
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
