"""The warehouse as the API holds it: one DuckDB database, one writer thread, read cursors.

While ``dissensus api`` runs, its process is the warehouse's only writer: DuckDB's file lock turns
every other writer away, and :mod:`dissensus.warehouse.server_info` tells them which URL holds
the file. Inside the process:

* **Writes go through one queue**, worked by one thread on its own cursor, one task at a time: an
  ingest batch (``batch_id = max + 1`` and the content-hash checks are only safe one batch at a
  time) is a task, so concurrent posts are serialised and every row is stored exactly once.
* **Reads** get a fresh cursor of the same database per request. DuckDB's MVCC gives each a
  snapshot of committed data, so a read never waits for a write task or a job, and never sees
  half a batch.
* **The vote index** (what the reviewer audit reads) is a full rebuild (about a second per million
  comparisons), so it is not redone after every batch: the writer rebuilds it once the writes
  have paused for :data:`INDEX_IDLE_SECONDS`, or during a steady stream of posts once it has been
  stale for :data:`INDEX_MAX_STALE_SECONDS`. Until then readers compute the votes in memory
  (correct, slower), exactly as the index module promises for a stale index.
* **Checkpoints wait for a pause** too. DuckDB writes a commit to its log (WAL) and, once the log
  passes ``checkpoint_threshold`` (16 MB by default), folds it into the file at that commit: a
  posted batch of 35,000 rows paid about 50 ms for that, every batch. The server raises the
  threshold to :data:`CHECKPOINT_THRESHOLD` and checkpoints when the writes pause, as it rebuilds
  the index; a crash loses nothing committed (DuckDB replays the log when the file opens).
* :attr:`Warehouse.version` counts committed changes of what readers see (new comparisons, a
  job's outputs); the read caches key on it, so a stream of duplicate posts keeps them warm.
  :attr:`Warehouse.index_builds` counts vote-index rebuilds; the read snapshot for the
  dashboards (:mod:`.snapshot_keeper`) is refreshed when either has moved.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from time import monotonic
from typing import Any, TypeVar

import duckdb

from dissensus.warehouse.db import connect
from dissensus.warehouse.vote_index import index_status, refresh_vote_index

T = TypeVar("T")
INDEX_IDLE_SECONDS = 1.0
"""Rebuild the vote index after the write queue has been empty this long."""
INDEX_MAX_STALE_SECONDS = 30.0
"""Rebuild it at the latest this long after the first unindexed batch, even while posts go on."""
CHECKPOINT_THRESHOLD = "256MB"
"""How much the write-ahead log may hold before a commit checkpoints; the writer also checkpoints
whenever the writes pause. Committed data not yet checkpointed is held in memory (DuckDB's
buffer pool), so this bounds that memory as well."""
log = logging.getLogger("dissensus.api")


class Warehouse:
    """The open warehouse of a running API: :meth:`write` for changes, :meth:`reader` for reads."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path
        self._con = connect(db_path)  # creates / migrates; fails in words when held or broken
        self._writer_con = self._con.cursor()
        self._tasks: queue.Queue[tuple[Callable[[duckdb.DuckDBPyConnection], Any], Future] | None]
        self._tasks = queue.Queue()
        self._version = 0
        self._version_lock = threading.Lock()
        self._index_builds = 0
        self._index_dirty = not index_status(self._con).startswith("fresh")
        self._writing = False
        self._unsaved = False  # commits since the last checkpoint
        self._con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        self._dirty_since = monotonic()
        self._thread = threading.Thread(target=self._work, name="dissensus-writer", daemon=True)
        self._thread.start()

    @property
    def version(self) -> int:
        """Incremented after every committed change readers see (see :meth:`changed`)."""
        return self._version

    @property
    def index_builds(self) -> int:
        """Vote-index rebuilds so far (no :attr:`version` change: same data, faster reads)."""
        return self._index_builds

    def changed(self) -> None:
        """Note a committed change that readers must see: called by whoever committed it, before
        telling its client (a client that reads right after its post then sees its rows)."""
        with self._version_lock:
            self._version += 1

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one request: a consistent snapshot, closed afterwards."""
        cursor = self._con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor the caller closes (a job's, held for the job's length)."""
        return self._con.cursor()

    def write(self, task: Callable[[duckdb.DuckDBPyConnection], T]) -> Future[T]:
        """Queue ``task(writer_cursor)``; the future holds its result or its exception."""
        future: Future[T] = Future()
        self._tasks.put((task, future))
        return future

    def queue_length(self) -> int:
        """Write tasks waiting (not counting the one running)."""
        return self._tasks.qsize()

    @property
    def writing(self) -> bool:
        """Whether a write task (an ingest batch, a job's outputs) is running now."""
        return self._writing

    def _work(self) -> None:
        self._refresh_index_if_needed()  # e.g. after a server killed between batch and rebuild
        while True:
            try:
                item = self._tasks.get(timeout=INDEX_IDLE_SECONDS)
            except queue.Empty:  # the writes have paused: now the rebuild delays nobody
                self._refresh_index_if_needed()
                self._checkpoint_if_needed()
                continue
            if item is None:
                return
            task, future = item
            if future.set_running_or_notify_cancel():
                self._writing = True
                try:
                    future.set_result(task(self._writer_con))
                except BaseException as error:  # handed to the request that queued it
                    future.set_exception(error)
                finally:
                    self._writing = False
                    self._unsaved = True
            if self._index_dirty and monotonic() - self._dirty_since > INDEX_MAX_STALE_SECONDS:
                self._refresh_index_if_needed()  # a steady stream of posts: rebuild now and then

    def mark_index_dirty(self) -> None:
        """Called by a write task that added comparisons (the index is rebuilt when idle)."""
        if not self._index_dirty:
            self._index_dirty, self._dirty_since = True, monotonic()

    def _checkpoint_if_needed(self) -> None:
        """Fold the log into the file while nobody is waiting for a write."""
        if not self._unsaved:
            return
        try:
            self._writer_con.execute("CHECKPOINT")
            self._unsaved = False
        except duckdb.Error as error:  # e.g. a job's reader holds a snapshot; next pause retries
            log.warning("checkpoint deferred: %s", error)

    def _refresh_index_if_needed(self) -> None:
        if not self._index_dirty:
            return
        try:
            seconds = refresh_vote_index(self._writer_con)
            self._index_dirty = False  # no version change: the index caches the same data
            self._unsaved = True
            self._index_builds += 1
            log.info("vote index rebuilt in %.1f s", seconds)
        except duckdb.Error as error:  # the audit computes the votes in memory meanwhile
            log.warning("vote index rebuild failed (will retry after the next batch): %s", error)

    def close(self) -> None:
        """Finish the queued writes, rebuild a stale index, then close the database."""
        self._tasks.put(None)
        self._thread.join()
        self._refresh_index_if_needed()
        self._writer_con.close()
        self._con.close()
