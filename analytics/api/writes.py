"""The endpoints that change or compute: post comparisons, score texts, start and poll jobs.

Scopes: posting comparisons needs ``write``; scoring needs ``read`` (it stores nothing); jobs
need ``admin`` (a fit or a training run takes the machine for minutes).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from dissensus.analytics.api.access import require
from dissensus.analytics.api.comparisons import to_jsonl
from dissensus.analytics.api.errors import ApiError
from dissensus.analytics.api.jobs import JobRunner
from dissensus.analytics.api.reads import warehouse_of

router = APIRouter(prefix="/v1")

POST_EXAMPLE = [{"reviewer_id": "r1", "choice": "a", "prompt": "Can I move my appointment?",
                 "response_a": "Yes, to Friday at 10.", "response_b": "Please call the clinic.",
                 "comparison_id": "ls-4711", "category": "scheduling"}]


@router.post(
    "/comparisons", dependencies=[Depends(require("write"))], tags=["write"],
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}},
                             "example": POST_EXAMPLE},
        "application/x-ndjson": {"schema": {"type": "string"}}}}},
)
async def post_comparisons(
    request: Request,
    strict: Annotated[bool, Query(description="Store nothing if any row is invalid.")] = False,
) -> dict[str, Any]:
    """Canonical comparison rows (a JSON array, or NDJSON) as one ingest batch.

    The same validation, quarantine and idempotence as `dissensus ingest`: the answer counts
    accepted, duplicates (seen before: a retry adds nothing) and quarantined rows, and lists each
    rejected line with its field and reason. Bodies over the size limit get 413."""
    posts = request.app.state.posts
    with posts.receiving():  # a batch about to start may wait for this body (comparisons.py)
        raw = await request.body()  # the size limit is enforced while it streams in (app.py)
        body = await run_in_threadpool(to_jsonl, raw, request.headers.get("content-type", ""))
        future = posts.submit(body, strict)
    return await asyncio.wrap_future(future)


class ScorePair(BaseModel):
    prompt: str = Field(min_length=1, max_length=100_000)
    response: str = Field(min_length=1, max_length=100_000)


class ScoreRequest(BaseModel):
    pairs: list[ScorePair] = Field(min_length=1, max_length=1000,
                                   description="Prompt/response pairs (at most 1000).")
    run: str | None = Field(None, description="A run id from /v1/runs; default the newest.")


@router.post("/score", dependencies=[Depends(require("read"))], tags=["read"])
def score(request: Request, payload: ScoreRequest) -> dict[str, Any]:
    """Reward per head for each prompt/response pair, standardised as `dissensus score` does."""
    from dissensus.analytics.api.scoring import score_pairs

    with warehouse_of(request).reader() as con:
        return score_pairs(con, payload.run, [(p.prompt, p.response) for p in payload.pairs])


class FitJob(BaseModel):
    settings: dict[str, Any] = Field(
        default_factory=dict, description="AnnotatorConfig fields, as `dissensus fit --set`.")


class TrainJob(BaseModel):
    kind: str = Field("weighted",
                      description="plain, weighted, multihead, distributional or mixture.")
    fit: str | None = Field(None, description="Fit id whose weights to use; default the latest.")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="RewardConfig fields, as `dissensus train --set`.")


def _config(build: Any, what: str) -> Any:
    """``build()`` or a 422 naming the invalid settings."""
    try:
        return build()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in error.errors())
        raise ApiError(422, "invalid_settings", f"The {what} settings are not valid: {problems}.",
                       expected=f"fields of the {what} config (see `dissensus {what} --help`)",
                       fix="correct or remove the settings named") from error


def _runner(request: Request) -> JobRunner:
    return request.app.state.jobs


@router.post("/jobs/fit", status_code=202, dependencies=[Depends(require("admin"))],
             tags=["jobs"])
def start_fit(request: Request, payload: Annotated[FitJob | None, Body()] = None
              ) -> dict[str, Any]:
    """Queue an annotator-model fit (`dissensus fit`); poll GET /v1/jobs/{id}."""
    payload = payload or FitJob()
    from dissensus.analytics.jobs.fit import run_fit
    from dissensus.models.annotator.config import AnnotatorConfig

    config = _config(lambda: AnnotatorConfig(**payload.settings), "fit")
    db_path = warehouse_of(request).path

    def work(con: Any, progress: Any) -> dict[str, Any]:
        outcome = run_fit(con, config, db_path=db_path, progress=progress)
        summary = outcome.model.fit_summary_
        return {"fit_id": outcome.fit_id, "method": summary["method"],
                "n_schools": summary["n_schools"], "n_comparisons": summary["n_comparisons"]}

    job = _runner(request).submit("fit", payload.settings, work)
    return _located(job.as_json(), job.job_id)


@router.post("/jobs/train", status_code=202, dependencies=[Depends(require("admin"))],
             tags=["jobs"])
def start_train(request: Request, payload: TrainJob) -> dict[str, Any]:
    """Queue a reward-model training run (`dissensus train`); poll GET /v1/jobs/{id}."""
    from dissensus.analytics.jobs.reward import train_run
    from dissensus.models.reward.config import make_config

    config = _config(lambda: make_config(payload.kind, **payload.settings), "train")

    def work(con: Any, progress: Any) -> dict[str, Any]:
        def embedded(done: int, total: int) -> None:
            progress("embedding texts", done / total if total else None)

        def log(line: str) -> None:
            progress(line[:200], None)

        run_id = train_run(con, payload.kind, payload.fit, config, log=log, progress=embedded)
        return {"run_id": run_id}

    job = _runner(request).submit("train", payload.model_dump(), work)
    return _located(job.as_json(), job.job_id)


def _located(body: dict[str, Any], job_id: str) -> dict[str, Any]:
    return body | {"poll": f"/v1/jobs/{job_id}"}


@router.get("/jobs", dependencies=[Depends(require("read"))], tags=["jobs"])
def jobs(request: Request) -> dict[str, Any]:
    """The newest jobs of this server's lifetime."""
    return {"items": [j.as_json() for j in _runner(request).recent()]}


@router.get("/jobs/{job_id}", dependencies=[Depends(require("read"))], tags=["jobs"])
def job(request: Request, job_id: str) -> dict[str, Any]:
    """A job's state (queued, running, succeeded, failed), step, progress and result."""
    found = _runner(request).get(job_id)
    if found is None:
        raise ApiError(404, "unknown_job", f"There is no job {job_id!r:.80} on this server.",
                       expected="an id returned by POST /v1/jobs/fit or /v1/jobs/train",
                       fix="jobs are kept until the server restarts; finished fits and runs "
                       "stay listed at /v1/fits and /v1/runs")
    record, ahead = found
    return record.as_json(ahead)
