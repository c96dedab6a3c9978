"""The lease protocol workers speak: claim, heartbeat, complete, fail, release."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from eval_service.api import crud
from eval_service.api.api.deps import get_db, require_writer
from eval_service.api.core.db import Database
from shared import schemas as S

router = APIRouter(prefix="/v1/jobs", tags=["workers"], dependencies=[Depends(require_writer)])


@router.post("/claim", response_model=S.Lease, responses={204: {"description": "nothing to do"}})
def claim(body: S.ClaimRequest, request: Request, db: Database = Depends(get_db)) -> S.Lease | Response:
    with db.write() as s:
        job = crud.claim(s, body)
        if job is None:
            return Response(status_code=204)
        lease = crud.lease_read(s, job)
    request.app.state.metrics.claims.inc()
    return lease


@router.post("/{job_id}/heartbeat", response_model=S.Lease)
def heartbeat(job_id: int, body: S.HeartbeatRequest, db: Database = Depends(get_db)) -> S.Lease:
    with db.write() as s:
        return crud.lease_read(s, crud.heartbeat(s, job_id, body))


@router.post("/{job_id}/complete", response_model=S.ResultRead)
def complete(
    job_id: int, body: S.CompleteRequest, request: Request, db: Database = Depends(get_db)
) -> S.ResultRead:
    with db.write() as s:
        result, stored = crud.complete(s, job_id, body)
        out = crud.result_read(result)
        job = crud.get_job(s, job_id)
        latency = (job.finished_at - job.created_at).total_seconds() if stored and job.finished_at else None
    if latency is not None:
        request.app.state.metrics.job_latency.observe(latency)
        request.app.state.sink.notify()
    return out


@router.post("/{job_id}/fail", response_model=S.JobRead)
def fail(job_id: int, body: S.FailRequest, db: Database = Depends(get_db)) -> S.JobRead:
    with db.write() as s:
        return crud.job_read(s, crud.fail(s, job_id, body))


@router.post("/{job_id}/release", response_model=S.JobRead)
def release(job_id: int, body: S.ReleaseRequest, db: Database = Depends(get_db)) -> S.JobRead:
    with db.write() as s:
        return crud.job_read(s, crud.release(s, job_id, body))
