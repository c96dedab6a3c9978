"""Eval jobs: enqueue, look up, cancel, retry, and `transition`, the one place that moves a job
from one status to another (the lease protocol in `leases` goes through it too).

    queued --claim--> leased --complete--> done
    leased --fail, expire--> queued, or dead when out of attempts (or the failure is final)
    leased --release--> queued (the attempt is given back)
    queued, leased --cancel--> cancelled;  dead, cancelled --retry--> queued
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from eval_service.api.core.config import ServerSettings
from eval_service.api.crud.retention import get_checkpoint, require_present
from eval_service.api.crud.runs import checkpoint_for_job, get_run
from eval_service.api.errors import Conflict, Invalid, NotFound
from eval_service.api.models import Checkpoint, EvalJob, utcnow
from shared import schemas
from shared.schemas import ACTIVE_STATUSES, FINISHED_STATUSES, JobStatus

# An equal job in one of these makes a new enqueue a duplicate. A dead job stays dead until
# `retry` (or an enqueue with `force`): the watcher's reconcile re-enqueues every checkpoint of
# its run, and must not make a new dead job per refused checkpoint per pass. A cancelled job does
# not block a new one (cancel is "not now", not "never").
DEDUPE_STATUSES = ACTIVE_STATUSES | {JobStatus.done, JobStatus.dead}


def transition_values(
    to: JobStatus,
    now: datetime,
    *,
    owner: str | None = None,
    lease_seconds: float | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The columns a job entering `to` gets: a leased job has an owner and an expiry; any other
    status has no expiry and no owner, except that a done job keeps the worker that completed
    it; a finished job gets `finished_at`. `error` becomes `last_error` (kept when None)."""
    values: dict[str, Any] = {
        "status": to,
        "finished_at": now if to in FINISHED_STATUSES else None,
        "lease_expires_at": None,
    }
    if to == JobStatus.leased:
        if owner is None or lease_seconds is None:
            raise ValueError("a lease needs an owner and a duration")
        values["lease_owner"] = owner
        values["lease_expires_at"] = now + timedelta(seconds=lease_seconds)
    elif to != JobStatus.done:
        values["lease_owner"] = None
    if error is not None:
        values["last_error"] = error
    return values


def transition(session: Session, job: EvalJob, to: JobStatus, now: datetime, **lease: Any) -> None:
    """Move `job` to `to` (see `transition_values` for the keyword arguments)."""
    for name, value in transition_values(to, now, **lease).items():
        setattr(job, name, value)
    session.add(job)


def job_read(session: Session, job: EvalJob, ckpt: Checkpoint | None = None) -> schemas.JobRead:
    ckpt = ckpt or session.get(Checkpoint, job.checkpoint_id)
    return schemas.JobRead.model_validate(
        {**job.model_dump(), "checkpoint_path": ckpt.path, "checkpoint_kind": ckpt.kind}
    )


def get_job(session: Session, job_id: int) -> EvalJob:
    job = session.get(EvalJob, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def enqueue(session: Session, settings: ServerSettings, body: schemas.JobCreate) -> tuple[EvalJob, bool]:
    """Returns (job, created): an equal queued, leased, done or dead job is returned instead of a
    new one unless `body.force` (see DEDUPE_STATUSES)."""
    # 409 once retention granted its deletion; locks the row against a grant until commit.
    ckpt = require_present(session, checkpoint_for_job(session, settings, body))
    spec_hash = body.spec.fingerprint()
    if not body.force:
        same = session.exec(
            select(EvalJob)
            .where(
                EvalJob.checkpoint_id == ckpt.id,
                EvalJob.spec_hash == spec_hash,
                col(EvalJob.status).in_(DEDUPE_STATUSES),
            )
            .order_by(col(EvalJob.id).desc())
        ).first()
        if same is not None:
            return same, False
    job = EvalJob(
        checkpoint_id=ckpt.id,
        run_id=ckpt.run_id,
        step=ckpt.step,
        task=body.spec.result_name,  # results are stored under the suite entry's name
        spec=body.spec.model_dump(mode="json"),
        spec_hash=spec_hash,
        priority=body.priority,
        max_attempts=settings.max_attempts,
    )
    session.add(job)
    session.flush()
    return job, True


def list_jobs(
    session: Session, status: str | None, run_ref: str | None, limit: int, offset: int = 0
) -> list[EvalJob]:
    q = select(EvalJob)
    if status:
        if status not in JobStatus.__members__:
            raise Invalid("status", f"unknown status {status!r}; one of {', '.join(JobStatus)}", "query")
        q = q.where(EvalJob.status == status)
    if run_ref:
        q = q.where(EvalJob.run_id == get_run(session, run_ref).id)
    return list(session.exec(q.order_by(col(EvalJob.id).desc()).offset(offset).limit(limit)))


def cancel(session: Session, job_id: int) -> EvalJob:
    job = get_job(session, job_id)
    if job.status in (JobStatus.done, JobStatus.dead):
        raise Conflict(f"job {job_id} is {job.status}; only queued or leased jobs can be cancelled")
    if job.status != JobStatus.cancelled:
        transition(session, job, JobStatus.cancelled, utcnow())
    return job


def retry(session: Session, settings: ServerSettings, job_id: int) -> EvalJob:
    """dead/cancelled -> queued with a fresh allowance of attempts (attempt numbers keep growing so
    a straggler from an old attempt still gets 409)."""
    job = get_job(session, job_id)
    if job.status not in (JobStatus.dead, JobStatus.cancelled):
        raise Conflict(f"job {job_id} is {job.status}; only dead or cancelled jobs can be retried")
    require_present(session, get_checkpoint(session, job.checkpoint_id))
    transition(session, job, JobStatus.queued, utcnow())
    job.max_attempts = job.attempt + settings.max_attempts
    return job


def queue_depth(session: Session) -> dict[str, int]:
    """Number of jobs per status (statuses without jobs are absent)."""
    rows = session.exec(select(EvalJob.status, func.count()).group_by(EvalJob.status)).all()
    return {status: n for status, n in rows}
