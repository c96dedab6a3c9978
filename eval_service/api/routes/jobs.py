"""Eval jobs as users see them: enqueue, list, cancel, results, samples; admin regrade/retry."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from eval_service.api.crud import jobs, results
from eval_service.api.deps import get_db, get_settings, require_admin, require_reader, require_writer
from eval_service.api.responses import JobId, errors
from shared import schemas

router = APIRouter(prefix="/v1", tags=["jobs"], responses=errors(401, 404, 422))


@router.post(
    "/jobs",
    response_model=schemas.EnqueueResult,
    dependencies=[Depends(require_writer)],
    responses=errors(413),
)
def enqueue(
    body: schemas.JobCreate, db: Database = Depends(get_db), settings: ServerSettings = Depends(get_settings)
) -> schemas.EnqueueResult:
    with db.write() as session:
        job, created = jobs.enqueue(session, settings, body)
        return schemas.EnqueueResult(job=jobs.job_read(session, job), created=created)


@router.get("/jobs", response_model=list[schemas.JobRead], dependencies=[Depends(require_reader)])
def list_jobs(
    status: str | None = None,
    run: str | None = None,
    limit: int = Query(500, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=2**63 - 1),
    db: Database = Depends(get_db),
) -> list[schemas.JobRead]:
    with db.read() as session:
        return [jobs.job_read(session, j) for j in jobs.list_jobs(session, status, run, limit, offset)]


@router.get("/jobs/{job_id:int}", response_model=schemas.JobRead, dependencies=[Depends(require_reader)])
def get_job(job_id: JobId, db: Database = Depends(get_db)) -> schemas.JobRead:
    with db.read() as session:
        return jobs.job_read(session, jobs.get_job(session, job_id))


@router.post(
    "/jobs/{job_id:int}/cancel",
    response_model=schemas.JobRead,
    dependencies=[Depends(require_writer)],
    responses=errors(409),
)
def cancel(job_id: JobId, db: Database = Depends(get_db)) -> schemas.JobRead:
    with db.write() as session:
        return jobs.job_read(session, jobs.cancel(session, job_id))


@router.post(
    "/jobs/{job_id:int}/retry",
    response_model=schemas.JobRead,
    dependencies=[Depends(require_admin)],
    responses=errors(403, 409),
)
def retry(
    job_id: JobId, db: Database = Depends(get_db), settings: ServerSettings = Depends(get_settings)
) -> schemas.JobRead:
    with db.write() as session:
        return jobs.job_read(session, jobs.retry(session, settings, job_id))


@router.get(
    "/jobs/{job_id:int}/result", response_model=schemas.ResultRead, dependencies=[Depends(require_reader)]
)
def result(job_id: JobId, db: Database = Depends(get_db)) -> schemas.ResultRead:
    with db.read() as session:
        return schemas.ResultRead.model_validate(results.get_result(session, job_id), from_attributes=True)


@router.get(
    "/jobs/{job_id:int}/samples", response_model=schemas.SamplePage, dependencies=[Depends(require_reader)]
)
def samples(
    job_id: JobId,
    correct: bool | None = None,
    category: str | None = None,
    truncated: bool | None = Query(None, description="only samples that hit max_tokens (or none of them)"),
    q: str | None = Query(None, max_length=200, description="text in prompt, response, gold or answer"),
    offset: int = Query(0, ge=0, le=2**63 - 1),
    limit: int = Query(100, ge=1, le=10_000),
    db: Database = Depends(get_db),
) -> schemas.SamplePage:
    with db.read() as session:
        return results.list_samples(
            session, job_id, correct, category, offset, limit, truncated=truncated, q=q
        )


@router.post(
    "/jobs/{job_id:int}/regrade",
    response_model=schemas.ResultRead,
    dependencies=[Depends(require_admin)],
    responses=errors(403, 413),
)
def regrade(
    job_id: JobId, body: schemas.RegradeRequest, request: Request, db: Database = Depends(get_db)
) -> schemas.ResultRead:
    with db.write() as session:
        result = results.regrade(session, job_id, body.grader_version, body.metrics, body.samples)
        out = schemas.ResultRead.model_validate(result, from_attributes=True)
    request.app.state.sink.notify()
    return out
