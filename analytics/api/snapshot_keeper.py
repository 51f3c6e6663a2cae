"""Keeps the warehouse's read snapshot fresh while the API serves it.

DuckDB admits no other process to a file that one process holds read-write, so while the API
runs, the dashboards and the read commands read a copy instead
(:mod:`dissensus.warehouse.snapshot`: how the copy is made safe to read). This module decides
*when* to copy:

* **On start, and after writes.** A thread of its own watches :attr:`Warehouse.version` (moved
  by every ingest batch, webhook event and finished fit or train job) and
  :attr:`Warehouse.index_builds` (a rebuilt vote index makes the dashboards' reviewer audit
  fast), and copies when either has moved since the last copy.
* **Debounced.** After a copy the next waits at least ``interval`` seconds, so a stream of posts
  costs one copy per interval, not one per post; and at least :data:`COPY_SPACING` times as long
  as the last copy took, so a large warehouse spends a bounded share of the server's time on
  copies.
* **Beside the writer, not in its queue.** The copy runs on a cursor of its own in one
  transaction: MVCC shows it committed data only (as every API read), so it never sees half a
  batch, and posts keep flowing while it runs instead of waiting seconds for a large copy.
* **Failures are not fatal.** A copy that fails (a full disk) leaves the previous snapshot in
  place, is logged once, and is retried later with growing pauses.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime
from time import monotonic
from typing import Any

import duckdb

from dissensus.analytics.api.service import Warehouse
from dissensus.warehouse.snapshot import write_snapshot

log = logging.getLogger("dissensus.api")
DEFAULT_INTERVAL_SECONDS = 5.0
"""Fewest seconds between two refreshes of the snapshot (``dissensus api --snapshot-interval``)."""
COPY_SPACING = 4.0
"""The next copy waits at least this many times as long as the last took (copies then take at
most about a fifth of the time)."""
POLL_SECONDS = 0.2
"""How often the thread looks for changes (comparing two counters: costs nothing)."""
MAX_RETRY_SECONDS = 300.0
"""Longest pause before retrying after failed copies."""


class SnapshotKeeper:
    """Refreshes the snapshot of ``warehouse`` after its changes; :meth:`close` stops it."""

    def __init__(self, warehouse: Warehouse,
                 interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.warehouse = warehouse
        self.interval = max(0.0, float(interval))
        self.refreshes = 0
        self._copied: tuple[int, int] | None = None  # (version, index builds) of the snapshot
        self._taken_at: str | None = None
        self._seconds: float | None = None
        self._error: str | None = None
        self._failures = 0
        self._not_before = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._copying: duckdb.DuckDBPyConnection | None = None
        self._thread = threading.Thread(target=self._work, name="dissensus-snapshot",
                                        daemon=True)
        self._thread.start()

    def status(self) -> dict[str, Any]:
        """What ``/healthz`` reports: the data version the snapshot holds, when it was taken."""
        return {"version": None if self._copied is None else self._copied[0],
                "taken_at": self._taken_at, "seconds": self._seconds,
                "refreshes": self.refreshes, "interval_seconds": self.interval,
                "error": self._error}

    def _work(self) -> None:
        while True:
            delay = max(POLL_SECONDS, self._not_before - monotonic())
            if self._stop.wait(delay):
                return
            # read before the copy starts: the copy then holds at least these changes (a
            # writer moves the counters after its commit), and a change during the copy is
            # seen as a change on the next look
            state = (self.warehouse.version, self.warehouse.index_builds)
            if state != self._copied:
                self._refresh(state)

    def _refresh(self, state: tuple[int, int]) -> None:
        cursor = self.warehouse.cursor()
        with self._lock:
            self._copying = cursor
        try:
            seconds = write_snapshot(cursor, self.warehouse.path)
        except Exception as error:  # the previous snapshot stays; reported, retried later
            if self._stop.is_set():  # interrupted by close(): nothing to report
                return
            self._failures += 1
            self._error = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
            if self._failures == 1:
                log.warning("could not refresh the dashboards' read snapshot (they keep the "
                            "previous one; retrying): %s", self._error)
            pause = min(MAX_RETRY_SECONDS, max(self.interval, 1.0) * 2 ** self._failures)
            self._not_before = monotonic() + pause
            return
        finally:
            with self._lock:
                self._copying = None
            cursor.close()
        self._copied, self._failures, self._error = state, 0, None
        self._seconds = round(seconds, 3)
        self._taken_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.refreshes += 1
        log.debug("read snapshot refreshed in %.2f s", seconds)
        self._not_before = monotonic() + max(self.interval, COPY_SPACING * seconds)

    def close(self) -> None:
        """Stop; a copy under way is interrupted (its temporary file is removed, the previous
        snapshot stays until the server removes it)."""
        self._stop.set()
        with self._lock:
            if self._copying is not None:
                with contextlib.suppress(duckdb.Error, RuntimeError):
                    self._copying.interrupt()
        self._thread.join(timeout=30)
