"""The read endpoints: reviewers, report cards, pairs, fits, runs, weights, quarantine,
withdrawals.

Each reads on a cursor of its own (a snapshot; never waiting for a write or a job) through the
same library functions as the command line and the dashboards: the reviewer audit
(:func:`dissensus.analytics.audit.reviewer_audit`), the report card
(:func:`dissensus.analytics.report_card.report_card`) and the latest-fit rule
(:func:`dissensus.warehouse.fits.latest_fit`). The audit and report cards are cached per warehouse
version (:attr:`Warehouse.version`): the first read after a change computes, the rest are
lookups. Lists are paginated: ``limit`` (1-1000) and ``offset``, with ``total`` and ``next``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Depends, Query, Request

from dissensus.analytics.api.access import require
from dissensus.analytics.api.errors import ApiError
from dissensus.analytics.api.service import Warehouse
from dissensus.warehouse.fits import FitOutput, fit_record, latest_fit

MAX_LIMIT = 1000
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page (at most 1000).")]
Offset = Annotated[int, Query(ge=0, le=2**62, description="Rows to skip.")]
Verdict = Literal["clear", "noise", "pluralism", "ambiguous", "unsettled"]
router = APIRouter(prefix="/v1", dependencies=[Depends(require("read"))], tags=["read"])


class VersionCache:
    """Values computed from the warehouse, kept while its version does not change.

    One computation per key: concurrent first requests for the same key wait for the one that
    computes (32 clients asking for a cold audit compute it once, not 32 times in parallel)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._computing: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple) -> tuple[bool, Any]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return True, self._items[key]
            return False, None

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key`` or ``compute()`` (stored, the oldest dropped)."""
        found, value = self._cached(key)
        if found:
            return value
        with self._lock:
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:
            found, value = self._cached(key)  # computed by the request we waited for
            if found:
                return value
            try:
                value = compute()
            except BaseException:
                with self._lock:
                    self._computing.pop(key, None)
                raise
            with self._lock:  # stored before the gate goes: no later request computes again
                self._items[key] = value
                self._computing.pop(key, None)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return value


AUDITS = VersionCache(2)
NOTES = VersionCache(2)
CARDS = VersionCache(256)


def warehouse_of(request: Request) -> Warehouse:
    """The open warehouse of the running app."""
    return request.app.state.warehouse


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: NaN and infinities become null (JSON has neither)."""
    floats = [c for c, t in frame.schema.items() if t in (pl.Float32, pl.Float64)]
    if floats:
        frame = frame.with_columns(
            pl.when(pl.col(c).is_finite()).then(pl.col(c)).otherwise(None).alias(c)
            for c in floats)
    return json.loads(frame.write_json()) if frame.height else []


def page(request: Request, items: list[dict[str, Any]], total: int, limit: int,
         offset: int) -> dict[str, Any]:
    """A page of a list with the link to the next one."""
    following = None
    if offset + len(items) < total:
        following = str(request.url.include_query_params(offset=offset + limit, limit=limit))
    return {"items": items, "total": total, "limit": limit, "offset": offset, "next": following}


def _audit(warehouse: Warehouse) -> pl.DataFrame:
    from dissensus.analytics.audit import reviewer_audit

    def compute() -> pl.DataFrame:
        with warehouse.reader() as con:
            return reviewer_audit(con)

    return AUDITS.get(("audit", warehouse.version), compute)


def _fit_or_latest(warehouse: Warehouse, fit: str | None, having: FitOutput) -> str:
    with warehouse.reader() as con:
        if fit is None:
            found = latest_fit(con, having=having)
            if found is None:
                raise ApiError(404, "no_fit", f"The warehouse holds no fit with {having}.",
                               expected="a fit made by `dissensus fit` or POST /v1/jobs/fit",
                               fix="start one with POST /v1/jobs/fit, then ask again")
            return found
        if fit_record(con, fit) is None:
            raise ApiError(404, "unknown_fit", f"There is no fit {fit!r:.80}.",
                           expected="a fit id listed by GET /v1/fits",
                           fix="omit ?fit= for the latest fit, or pick one from /v1/fits")
        return fit


def _audit_notes(warehouse: Warehouse, audit: pl.DataFrame) -> list[str]:
    """The words `dissensus reviewers` prints under its table: what the latest fit's data
    cannot support, and how many reviewers' votes cannot tell careful from lapsing."""
    from dissensus.analytics.audit import audit_notes

    def compute() -> list[str]:
        with warehouse.reader() as con:
            return audit_notes(con, audit)

    return NOTES.get((warehouse.version,), compute)


@router.get("/reviewers")
def reviewers(request: Request, limit: Limit = 100, offset: Offset = 0,
              flagged: bool | None = None) -> dict[str, Any]:
    """The ranked reviewer audit (what `dissensus reviewers` shows), one row per reviewer;
    ``notes`` says in words what the data cannot support about the reviewers."""
    warehouse = warehouse_of(request)
    frame = _audit(warehouse)
    notes = _audit_notes(warehouse, frame)
    if flagged is not None:
        frame = frame.filter(pl.col("flagged") == flagged)
    listed = page(request, records(frame.slice(offset, limit)), frame.height, limit, offset)
    return listed | {"notes": notes}


@router.get("/reviewers/{reviewer_id:path}")
def reviewer(request: Request, reviewer_id: str) -> dict[str, Any]:
    """One reviewer's report card (what `dissensus reviewer ID` shows)."""
    from dissensus.analytics.report_card import report_card

    warehouse = warehouse_of(request)
    audit = _audit(warehouse)
    if audit.filter(pl.col("reviewer_id") == reviewer_id).height == 0:
        raise ApiError(404, "unknown_reviewer", f"There is no reviewer {reviewer_id!r:.120}.",
                       where="GET /v1/reviewers/{id}",
                       expected="an id listed by GET /v1/reviewers (ids are case-sensitive)",
                       fix="check the spelling; URL-encode spaces and other special characters")

    def compute() -> dict[str, Any]:
        with warehouse.reader() as con:
            card = report_card(con, reviewer_id)
        summary = records(pl.DataFrame([card.summary]))[0]
        return {"reviewer_id": reviewer_id, "summary": summary,
                "figures": records(card.figures), "partners": records(card.partners),
                "drift": records(card.drift), "disagreements": records(card.disagreements)}

    return CARDS.get((warehouse.version, reviewer_id), compute)


@router.get("/pairs")
def pairs(request: Request, limit: Limit = 100, offset: Offset = 0,
          verdict: Verdict | None = None, category: str | None = None,
          fit: str | None = None) -> dict[str, Any]:
    """Pairs of a fit (default: the latest) with their shares and verdict, most votes first."""
    warehouse = warehouse_of(request)
    fit_id = _fit_or_latest(warehouse, fit, "pair_estimates")
    where = ["e.fit_id = ?"]
    params: list[object] = [fit_id]
    if verdict is not None:
        where.append("e.verdict = ?")
        params.append(verdict)
    if category is not None:
        where.append("p.category = ?")
        params.append(category)
    sql = (" FROM pair_estimates e LEFT JOIN prompts p ON p.prompt_id = e.prompt_id "
           "WHERE " + " AND ".join(where))
    with warehouse.reader() as con:
        total = int(con.execute("SELECT count(*)" + sql, params).fetchall()[0][0])
        frame = con.sql(
            "SELECT e.pair_id, e.prompt_id, e.prompt, p.category, e.n_votes, e.p_first, "
            "e.noise_share, e.pluralism_share, e.ambiguity_share, e.verdict" + sql
            + " ORDER BY e.n_votes DESC, e.pair_id LIMIT ? OFFSET ?",
            params=[*params, limit, offset]).pl()
    return page(request, records(frame), total, limit, offset) | {"fit_id": fit_id}


@router.get("/fits")
def fits(request: Request, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Annotator-model fits, newest first."""
    with warehouse_of(request).reader() as con:
        total = int(con.execute("SELECT count(*) FROM fits").fetchall()[0][0])
        frame = con.sql(
            "SELECT fit_id, created_at, method, n_schools, n_comparisons, seconds FROM fits "
            "ORDER BY created_at DESC, fit_id DESC LIMIT ? OFFSET ?", params=[limit, offset]).pl()
    return page(request, records(frame), total, limit, offset)


@router.get("/fits/{fit_id}")
def fit_detail(request: Request, fit_id: str) -> dict[str, Any]:
    """One fit with its diagnostics and config."""
    warehouse = warehouse_of(request)
    _fit_or_latest(warehouse, fit_id, "reviewer_estimates")
    with warehouse.reader() as con:
        record = fit_record(con, fit_id)
    return json.loads(json.dumps(record, default=str))


@router.get("/runs")
def runs(request: Request, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Reward-model runs, newest first, with their held-out metrics."""
    with warehouse_of(request).reader() as con:
        total = int(con.execute("SELECT count(*) FROM reward_runs").fetchall()[0][0])
        rows = con.execute(
            "SELECT run_id, created_at, kind, fit_id, encoder, device, metrics FROM reward_runs "
            "ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?", [limit, offset]).fetchall()
    items = [{"run_id": r[0], "created_at": str(r[1]), "kind": r[2], "fit_id": r[3],
              "encoder": r[4], "device": r[5], "metrics": json.loads(r[6] or "{}")}
             for r in rows]
    return page(request, items, total, limit, offset)


@router.get("/weights")
def weights(request: Request, limit: Limit = 1000, offset: Offset = 0,
            fit: str | None = None) -> dict[str, Any]:
    """Comparison weights of a fit (default: the latest) for a training pipeline; comparisons
    withdrawn as deleted since the fit are left out (GET /v1/withdrawals lists them)."""
    warehouse = warehouse_of(request)
    fit_id = _fit_or_latest(warehouse, fit, "comparison_weights")
    # a pipeline joins these to the comparisons it trains on: a deleted one must not come back
    sql = ("FROM comparison_weights w WHERE fit_id = ? AND NOT EXISTS (SELECT 1 FROM "
           "comparison_withdrawals d WHERE d.reason = 'deleted' "
           "AND d.comparison_id = w.comparison_id)")
    with warehouse.reader() as con:
        total = int(con.execute(f"SELECT count(*) {sql}", [fit_id]).fetchall()[0][0])
        frame = con.sql(
            f"SELECT comparison_id, weight, school_weights {sql} "
            "ORDER BY comparison_id LIMIT ? OFFSET ?",
            params=[fit_id, limit, offset]).pl()
    return page(request, records(frame), total, limit, offset) | {"fit_id": fit_id}


@router.get("/quarantine")
def quarantine(request: Request, limit: Limit = 100, offset: Offset = 0,
               batch: int | None = None) -> dict[str, Any]:
    """Rejected rows with batch, file, line, field, reason and the raw text."""
    where, params = ("WHERE batch_id = ?", [batch]) if batch is not None else ("", [])
    with warehouse_of(request).reader() as con:
        total = int(con.execute(f"SELECT count(*) FROM quarantine {where}", params)
                    .fetchall()[0][0])
        frame = con.sql(
            f"SELECT batch_id, file_path, line, field, reason, raw FROM quarantine {where} "
            "ORDER BY batch_id, line LIMIT ? OFFSET ?", params=[*params, limit, offset]).pl()
    return page(request, records(frame), total, limit, offset)


@router.get("/withdrawals")
def withdrawals(request: Request, limit: Limit = 100, offset: Offset = 0,
                reason: Literal["deleted", "revised"] | None = None) -> dict[str, Any]:
    """Comparisons no longer current, newest first: deleted at the source (e.g. a Label Studio
    annotation deleted), or revised (`current_choice` is the choice now stored). The full
    rows stay in the warehouse table `comparison_withdrawals`."""
    from dissensus.warehouse.withdrawals import withdrawal_rows

    with warehouse_of(request).reader() as con:
        total, frame = withdrawal_rows(con, reason=reason, limit=limit, offset=offset)
    return page(request, records(frame), total, limit, offset)
