"""The lease protocol workers speak: claim, heartbeat, complete, fail, release."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from eval_service.api.core.db import Database
from eval_service.api.crud import jobs, leases
from eval_service.api.deps import get_db, require_writer
from eval_service.api.responses import JobId, errors
from shared import schemas

router = APIRouter(
    prefix="/v1/jobs",
    tags=["workers"],
    dependencies=[Depends(require_writer)],
    responses=errors(401, 404, 409, 413, 422),
)


@router.post("/claim", response_model=schemas.Lease, responses={204: {"description": "nothing to do"}})
def claim(
    body: schemas.ClaimRequest, request: Request, db: Database = Depends(get_db)
) -> schemas.Lease | Response:
    with db.write() as session:
        job = leases.claim(session, body)
        if job is None:
            return Response(status_code=204)
        lease = leases.lease_read(session, job)
    request.app.state.metrics.claims.inc()
    return lease


@router.post("/{job_id:int}/heartbeat", response_model=schemas.Lease)
def heartbeat(job_id: JobId, body: schemas.HeartbeatRequest, db: Database = Depends(get_db)) -> schemas.Lease:
    with db.write() as session:
        return leases.lease_read(session, leases.heartbeat(session, job_id, body))


@router.post("/{job_id:int}/complete", response_model=schemas.ResultRead)
def complete(
    job_id: JobId, body: schemas.CompleteRequest, request: Request, db: Database = Depends(get_db)
) -> schemas.ResultRead:
    with db.write() as session:
        result, stored = leases.complete(session, job_id, body)
        out = schemas.ResultRead.model_validate(result, from_attributes=True)
        job = jobs.get_job(session, job_id)
        latency = (job.finished_at - job.created_at).total_seconds() if stored and job.finished_at else None
    if latency is not None:
        request.app.state.metrics.job_latency.observe(latency)
        if body.load_mode is not None:
            request.app.state.metrics.checkpoint_loads.labels(mode=body.load_mode).inc()
        request.app.state.sink.notify()
    return out


@router.post("/{job_id:int}/fail", response_model=schemas.JobRead)
def fail(job_id: JobId, body: schemas.FailRequest, db: Database = Depends(get_db)) -> schemas.JobRead:
    with db.write() as session:
        return jobs.job_read(session, leases.fail(session, job_id, body))


@router.post("/{job_id:int}/release", response_model=schemas.JobRead)
def release(job_id: JobId, body: schemas.ReleaseRequest, db: Database = Depends(get_db)) -> schemas.JobRead:
    with db.write() as session:
        return jobs.job_read(session, leases.release(session, job_id, body))
