"""Eval jobs as users see them: enqueue, list, cancel, results, samples; admin regrade/retry."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from eval_service.api import crud
from eval_service.api.api.deps import (
    get_db,
    get_settings,
    require_admin,
    require_reader,
    require_writer,
)
from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from shared import schemas as S

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.post("/jobs", response_model=S.EnqueueResult, dependencies=[Depends(require_writer)])
def enqueue(
    body: S.JobCreate, db: Database = Depends(get_db), settings: ServerSettings = Depends(get_settings)
) -> S.EnqueueResult:
    with db.write() as s:
        job, created = crud.enqueue(s, settings, body)
        return S.EnqueueResult(job=crud.job_read(s, job), created=created)


@router.get("/jobs", response_model=list[S.JobRead], dependencies=[Depends(require_reader)])
def list_jobs(
    status: str | None = None,
    run: str | None = None,
    limit: int = Query(500, ge=1, le=10_000),
    db: Database = Depends(get_db),
) -> list[S.JobRead]:
    with db.read() as s:
        return [crud.job_read(s, j) for j in crud.list_jobs(s, status, run, limit)]


@router.get("/jobs/{job_id}", response_model=S.JobRead, dependencies=[Depends(require_reader)])
def get_job(job_id: int, db: Database = Depends(get_db)) -> S.JobRead:
    with db.read() as s:
        return crud.job_read(s, crud.get_job(s, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=S.JobRead, dependencies=[Depends(require_writer)])
def cancel(job_id: int, db: Database = Depends(get_db)) -> S.JobRead:
    with db.write() as s:
        return crud.job_read(s, crud.cancel(s, job_id))


@router.post("/jobs/{job_id}/retry", response_model=S.JobRead, dependencies=[Depends(require_admin)])
def retry(
    job_id: int, db: Database = Depends(get_db), settings: ServerSettings = Depends(get_settings)
) -> S.JobRead:
    with db.write() as s:
        return crud.job_read(s, crud.retry(s, settings, job_id))


@router.get("/jobs/{job_id}/result", response_model=S.ResultRead, dependencies=[Depends(require_reader)])
def result(job_id: int, db: Database = Depends(get_db)) -> S.ResultRead:
    with db.read() as s:
        return crud.result_read(crud.get_result(s, job_id))


@router.get("/jobs/{job_id}/samples", response_model=S.SamplePage, dependencies=[Depends(require_reader)])
def samples(
    job_id: int,
    correct: bool | None = None,
    category: str | None = None,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=10_000),
    db: Database = Depends(get_db),
) -> S.SamplePage:
    with db.read() as s:
        return crud.list_samples(s, job_id, correct, category, offset, limit)


class RegradeRequest(BaseModel):
    grader_version: str
    metrics: dict[str, float]
    samples: list[S.Sample] = []


@router.post("/jobs/{job_id}/regrade", response_model=S.ResultRead, dependencies=[Depends(require_admin)])
def regrade(
    job_id: int, body: RegradeRequest, request: Request, db: Database = Depends(get_db)
) -> S.ResultRead:
    with db.write() as s:
        out = crud.result_read(crud.regrade(s, job_id, body.grader_version, body.metrics, body.samples))
    request.app.state.sink.notify()
    return out
