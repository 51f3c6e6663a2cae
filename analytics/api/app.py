"""The FastAPI application: routes under ``/v1``, OpenAPI docs at ``/docs``, ``/healthz``.

:func:`create_app` takes an already open :class:`~dissensus.analytics.api.service.Warehouse` (the
command opens it first, so a held or broken file is reported in words before anything listens)
and the settings; :func:`serve` runs it with uvicorn, holds the server note beside the file and
keeps the read snapshot that the dashboards open meanwhile (:mod:`.snapshot_keeper`).
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dissensus.analytics.api import errors, label_studio, reads, writes
from dissensus.analytics.api.access import check_bind, is_loopback
from dissensus.analytics.api.comparisons import PostQueue, clear_spool
from dissensus.analytics.api.errors import ApiError
from dissensus.analytics.api.jobs import JobRunner
from dissensus.analytics.api.service import Warehouse
from dissensus.analytics.api.snapshot_keeper import DEFAULT_INTERVAL_SECONDS, SnapshotKeeper
from dissensus.analytics.api.tokens import TokenStore

log = logging.getLogger("dissensus.api")
MIB = 1024 * 1024
BIG_BODY_PATHS = ("/v1/comparisons", "/v1/webhooks/label-studio")
"""Paths that take rows in bulk (a bulk ANNOTATIONS_CREATED event can be large)."""
DRAIN_CAP = 1024 * MIB
"""Most of a refused body read and dropped before the 413 (beyond it the connection is cut)."""


@dataclass(frozen=True)
class ApiSettings:
    """How the server runs."""

    db_path: Path
    host: str = "127.0.0.1"
    port: int = 8765
    max_body_mb: int = 64
    """Largest ``POST /v1/comparisons`` (or Label Studio webhook) body; larger batches are split
    by the client."""
    max_other_body_mb: int = 4
    """Largest body of any other endpoint (score and job requests are small)."""
    salt: str | None = None
    """Reviewer-id pseudonymisation salt, as ``dissensus ingest --pseudonymise-salt``."""
    snapshot_interval: float = DEFAULT_INTERVAL_SECONDS
    """Fewest seconds between refreshes of the read snapshot for the dashboards; 0 keeps
    none (the dashboards then only say which server holds the file)."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _too_large(limit: int, path: str) -> ApiError:
    return ApiError(
        413, "body_too_large", f"The request body is over {limit // MIB} MiB.",
        where=path, expected=f"at most {limit // MIB} MiB per request",
        fix="split the rows into several requests (each is stored whole or not at all, and a "
        "retry adds nothing twice), or start the server with a larger --max-body-mb; nothing "
        "was stored")


class BodyLimit:
    """Refuse bodies over the limit: by Content-Length before the endpoint runs, or as they
    stream in (chunked bodies have none), before anything of them is parsed or stored."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings

    def limit(self, path: str) -> int:
        big = path.rstrip("/") in BIG_BODY_PATHS
        return (self.settings.max_body_mb if big else self.settings.max_other_body_mb) * MIB

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.limit(path)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _drain(receive, more=True)
            await _too_large(limit, path).response()(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    await _drain(receive, more=message.get("more_body", False))
                    raise _too_large(limit, path)  # answered by the ApiError handler
            return message

        await self.app(scope, limited, send)


async def _drain(receive: Receive, more: bool, cap: int = DRAIN_CAP) -> None:
    """Read and drop the rest of a refused body (up to ``cap`` bytes), so that a client that
    sends the whole body before reading the answer gets the 413 rather than a broken pipe."""
    dropped = 0
    while more and dropped < cap:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        more = message.get("more_body", False)


def create_app(warehouse: Warehouse, settings: ApiSettings,
               snapshots: SnapshotKeeper | None = None) -> FastAPI:
    """The application over an open warehouse (``snapshots``: the keeper of its read snapshot,
    reported by ``/healthz``)."""
    app = FastAPI(
        title="dissensus",
        version="1",
        summary="Reviewer disagreement and reward modelling over a preference-data warehouse.",
        description="Post comparisons from a labeling platform, query reviewers, pairs, fits, "
        "runs and comparison weights, score texts and start fit and train jobs. Send "
        "`Authorization: Bearer <token>` once any token exists (`dissensus api token create`).",
    )
    app.state.warehouse = warehouse
    app.state.tokens = TokenStore(settings.db_path)
    app.state.public = not is_loopback(settings.host)
    app.state.posts = PostQueue(warehouse, settings.salt)
    app.state.jobs = JobRunner(warehouse)
    app.state.snapshots = snapshots
    errors.install(app)
    app.add_middleware(BodyLimit, settings=settings)
    app.include_router(reads.router)
    app.include_router(writes.router)
    app.include_router(label_studio.router)

    @app.get("/healthz", tags=["health"])
    def healthz(request: Request) -> dict[str, Any]:
        """Liveness and the warehouse's state; needs no token. ``snapshot``: the data
        ``version`` the dashboards' read snapshot holds and when it was taken (null when the
        server keeps none)."""
        w: Warehouse = request.app.state.warehouse
        with w.reader() as con:
            comparisons = int(con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0])
        keeper: SnapshotKeeper | None = request.app.state.snapshots
        return {"status": "ok", "comparisons": comparisons, "version": w.version,
                "write_queue": w.queue_length(), "writing": w.writing,
                "snapshot": None if keeper is None else keeper.status()}

    return app


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(settings: ApiSettings, on_ready: Any = None) -> None:
    """Open the warehouse, hold it and serve until stopped (Ctrl-C or SIGTERM)."""
    import uvicorn

    from dissensus.warehouse.server_info import clear_server_info, write_server_info
    from dissensus.warehouse.snapshot import remove_snapshot

    check_bind(settings.host, TokenStore(settings.db_path))
    warehouse = Warehouse(settings.db_path)
    app: FastAPI | None = None
    keeper: SnapshotKeeper | None = None
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it; with the default handler
    # that would end the process before the warehouse is closed and the note removed
    previous = signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        cleared = clear_spool(settings.db_path)
        if cleared:
            log.warning("removed %d request bodies left by a server that was stopped "
                        "mid-request (nothing of them is half-stored)", cleared)
        # a snapshot left by a server that was killed is older than the file: never show it
        remove_snapshot(settings.db_path)
        if settings.snapshot_interval > 0:
            keeper = SnapshotKeeper(warehouse, settings.snapshot_interval)
        app = create_app(warehouse, settings, keeper)
        write_server_info(settings.db_path, settings.url)
        if on_ready is not None:
            on_ready(settings)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                    access_log=False)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down; close below, no traceback
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if app is not None:
            app.state.jobs.close()
        if keeper is not None:
            keeper.close()
        warehouse.close()
        clear_server_info(settings.db_path)
        # after the note: a reader that still finds the note finds the snapshot too, and one
        # that finds neither opens the warehouse, which is free by now
        remove_snapshot(settings.db_path)
