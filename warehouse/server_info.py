"""Who holds a warehouse: the note ``dissensus api`` leaves beside the file while it serves it.

While the API runs it is the warehouse's only writer, so DuckDB's file lock turns every other
opener away. The lock alone says only "busy"; this note (``<db>.api/server.json``: URL, process
id, start time) lets :func:`dissensus.warehouse.db.connect` say *which* server holds the file and
what to do instead. The note is advisory: it is trusted only while its process is alive, so a
server killed with ``kill -9`` leaves a stale note that is ignored (and replaced on restart).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dissensus.warehouse.artefacts import api_folder
from dissensus.warehouse.errors import DatabaseBusyError

SERVER_FILE = "server.json"


@dataclass(frozen=True)
class ServerInfo:
    """The API process serving a warehouse."""

    url: str
    pid: int
    started_at: str


def _note(db_path: str | Path) -> Path:
    return api_folder(db_path) / SERVER_FILE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def write_server_info(db_path: str | Path, url: str) -> ServerInfo:
    """Record that this process serves ``db_path`` at ``url`` (written atomically)."""
    info = ServerInfo(url=url, pid=os.getpid(),
                      started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    note = _note(db_path)
    note.parent.mkdir(parents=True, exist_ok=True)
    tmp = note.with_suffix(".tmp")
    tmp.write_text(json.dumps(info.__dict__))
    os.replace(tmp, note)
    return info


def clear_server_info(db_path: str | Path) -> None:
    """Remove the note if this process wrote it (a newer server's note is left alone)."""
    info = server_info(db_path)
    if info is not None and info.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            _note(db_path).unlink()


def server_info(db_path: str | Path) -> ServerInfo | None:
    """The live API process serving ``db_path``; ``None`` when there is none (or only a stale
    note from a server that was killed)."""
    try:
        data = json.loads(_note(db_path).read_text())
        info = ServerInfo(url=str(data["url"]), pid=int(data["pid"]),
                          started_at=str(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _alive(info.pid) else None


def held_by_server_error(db_path: str | Path) -> DatabaseBusyError | None:
    """The error for an opener turned away because the API holds ``db_path``; ``None`` when no
    live API holds it (the caller then reports the plain lock conflict)."""
    info = server_info(db_path)
    if info is None:
        return None
    return DatabaseBusyError(
        f"The warehouse {db_path} is held by the dissensus API at {info.url} (process "
        f"{info.pid}, since {info.started_at}); while it runs it is the only writer.",
        where=str(db_path),
        expected="no `dissensus api` serving this file, or requests sent to it",
        fix=f"send the work to the API (e.g. POST {info.url}/v1/comparisons, "
        f"GET {info.url}/v1/reviewers, POST {info.url}/v1/jobs/fit; docs at {info.url}/docs), "
        f"or stop the server (Ctrl-C in its terminal, or `kill {info.pid}`) and run the "
        "command again",
    )
