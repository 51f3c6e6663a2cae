"""Fit and train jobs: queued, run one at a time in one thread, polled by id.

A job runs :func:`dissensus.analytics.jobs.fit.run_fit` or
:func:`dissensus.analytics.jobs.reward.train_run` (the jobs behind ``dissensus fit`` and
``train``) on a cursor of its own. It reads a snapshot and writes only its own output tables
(``fits`` and what hangs off it, or ``reward_runs``) in one transaction at its end, so posts keep
flowing through the write queue while a fit runs for minutes, and readers never wait for it.
Jobs are kept in memory: a restart forgets finished jobs (their outputs are in the warehouse,
listed by ``/v1/fits`` and ``/v1/runs``) and a job cut off by the restart left nothing half-done.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from dissensus.analytics.api.service import Warehouse
from dissensus.warehouse.errors import DissensusError

log = logging.getLogger("dissensus.api")
JobWork = Callable[[duckdb.DuckDBPyConnection, Callable[[str, float | None], None]], dict]
"""``work(cursor, progress)``: does the job, returns its result; ``progress(step, fraction)``."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    """One job's state as ``GET /v1/jobs/{id}`` reports it."""

    job_id: str
    kind: str
    params: dict[str, Any]
    state: str = "queued"  # queued -> running -> succeeded | failed
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    step: str | None = None
    progress: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def as_json(self, position: int | None = None) -> dict[str, Any]:
        """The job as JSON, with its place in the queue when it waits."""
        out = dict(self.__dict__)
        if self.state == "queued":
            out["queue_position"] = position
        return out


class JobRunner:
    """The job queue of a running API."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self._jobs: dict[str, Job] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Job, JobWork] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="dissensus-jobs", daemon=True)
        self._thread.start()

    def submit(self, kind: str, params: dict[str, Any], work: JobWork) -> Job:
        """Queue a job; it starts when the jobs before it have finished."""
        job = Job(job_id=f"job-{uuid.uuid4().hex[:12]}", kind=kind, params=params)
        with self._lock:
            self._jobs[job.job_id] = job
            self._order.append(job.job_id)
        self._queue.put((job, work))
        return job

    def get(self, job_id: str) -> tuple[Job, int | None] | None:
        """The job and, when queued, how many jobs run or wait before it."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            ahead = sum(1 for j in self._order
                        if j != job_id and self._jobs[j].state in ("queued", "running")
                        and self._order.index(j) < self._order.index(job_id))
        return job, ahead if job.state == "queued" else None

    def recent(self, limit: int = 50) -> list[Job]:
        """The newest jobs first."""
        with self._lock:
            return [self._jobs[j] for j in reversed(self._order[-limit:])]

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, work = item
            job.state, job.started_at = "running", _now()

            def progress(step: str, fraction: float | None, job: Job = job) -> None:
                job.step = step
                job.progress = None if fraction is None else round(float(fraction), 4)

            cursor = self.warehouse.cursor()
            try:
                job.result = work(cursor, progress)
                self.warehouse.changed()  # before "succeeded": a poller then reads the outputs
                job.state, job.progress = "succeeded", 1.0
            except DissensusError as error:
                job.state = "failed"
                job.error = {"message": error.what, "where": error.where,
                             "expected": error.expected, "fix": error.fix}
            except Exception as error:  # a job's failure is reported, never kills the runner
                log.error("job %s failed:\n%s", job.job_id, traceback.format_exc())
                job.state = "failed"
                job.error = {"message": f"{type(error).__name__}: {error}",
                             "fix": "see the server's log; nothing half-done was stored"}
            finally:
                cursor.close()
                job.finished_at = _now()

    def close(self) -> None:
        """Stop after the running job; queued jobs are dropped (nothing of them was stored)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout=5)
