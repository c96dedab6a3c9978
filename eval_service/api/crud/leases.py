"""The lease protocol workers speak: claim, heartbeat, complete, fail, release, and the expiry
of leases whose worker went silent. Every status change goes through `jobs.transition`; every
write of a worker is fenced by its attempt number (`_held`), so a stale attempt gets 409."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from eval_service.api.crud import flips, outbox, scores
from eval_service.api.crud.jobs import get_job, job_read, transition, transition_values
from eval_service.api.crud.results import check_metrics, store_samples
from eval_service.api.errors import Conflict
from eval_service.api.models import EvalJob, EvalResult, Run, utcnow
from shared import schemas
from shared.schemas import JobStatus


def lease_read(session: Session, job: EvalJob) -> schemas.Lease:
    return schemas.Lease(
        job=job_read(session, job),
        attempt=job.attempt,
        worker_id=job.lease_owner or "",
        lease_expires_at=job.lease_expires_at,
    )


def _requeue_or_bury(session: Session, job: EvalJob, now: datetime, error: str, *, retryable: bool) -> None:
    """A lease that ended without a result: the job is queued again, or dead when it may not be
    retried or has no attempts left."""
    dead = not retryable or job.attempt >= job.max_attempts
    transition(session, job, JobStatus.dead if dead else JobStatus.queued, now, error=error)


def expire_leases(session: Session, now: datetime | None = None) -> int:
    """Re-queue leased jobs whose lease has passed; jobs out of attempts become dead."""
    now = now or utcnow()
    # Postgres: rows another transaction is expiring right now are skipped, not expired twice.
    expired = list(
        session.exec(
            select(EvalJob)
            .where(EvalJob.status == JobStatus.leased, col(EvalJob.lease_expires_at) < now)
            .with_for_update(skip_locked=True)
        )
    )
    for job in expired:
        _requeue_or_bury(session, job, now, "lease expired", retryable=True)
    return len(expired)


def claim(session: Session, req: schemas.ClaimRequest) -> EvalJob | None:
    """Lease the queued job with the highest priority, newest step first; None when none fits.

    SQLite: the write transaction is BEGIN IMMEDIATE (core.db), so claims run one at a time and
    the first queued job is free. Postgres: claims run concurrently under READ COMMITTED, so the
    pick is `FOR UPDATE SKIP LOCKED`: a job another claimer is taking is passed over for the next
    one, instead of both picking it and the loser getting nothing while jobs are queued. SQLite
    renders no locking clause, so one query serves both."""
    now = utcnow()
    expire_leases(session, now)
    q = select(EvalJob.id).where(EvalJob.status == JobStatus.queued)
    if req.run_id is not None:
        q = q.where(EvalJob.run_id == req.run_id)
    if req.tasks:
        q = q.where(col(EvalJob.task).in_(req.tasks))
    if req.prefer_checkpoint_id is not None:  # the worker's loaded checkpoint first: one swap per suite
        q = q.order_by(col(EvalJob.checkpoint_id) != req.prefer_checkpoint_id)
    q = q.order_by(col(EvalJob.priority).desc(), col(EvalJob.step).desc(), col(EvalJob.id)).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    job_id = session.exec(q).first()
    if job_id is None:
        return None
    # Guarded on status: atomic under BEGIN IMMEDIATE, and still correct under other databases.
    lease = transition_values(JobStatus.leased, now, owner=req.worker_id, lease_seconds=req.lease_seconds)
    res = session.execute(
        update(EvalJob)
        .where(col(EvalJob.id) == job_id, col(EvalJob.status) == JobStatus.queued)
        .values(attempt=EvalJob.attempt + 1, **lease)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        return None
    job = session.get(EvalJob, job_id)
    session.refresh(job)
    return job


def _held(session: Session, job_id: int, worker_id: str, attempt: int) -> EvalJob:
    """The job, if it is still leased to exactly this attempt; else 409 (a stale attempt)."""
    job = get_job(session, job_id)
    if job.status != JobStatus.leased or job.attempt != attempt or job.lease_owner != worker_id:
        raise Conflict(
            f"job {job_id}: attempt {attempt} by {worker_id!r} is stale "
            f"(job is {job.status}, attempt {job.attempt}, owner {job.lease_owner!r})"
        )
    if job.lease_expires_at is not None and job.lease_expires_at < utcnow():
        raise Conflict(f"job {job_id}: the lease of attempt {attempt} expired")
    return job


def heartbeat(session: Session, job_id: int, req: schemas.HeartbeatRequest) -> EvalJob:
    job = _held(session, job_id, req.worker_id, req.attempt)
    transition(
        session, job, JobStatus.leased, utcnow(), owner=job.lease_owner, lease_seconds=req.lease_seconds
    )
    return job


def complete(session: Session, job_id: int, req: schemas.CompleteRequest) -> tuple[EvalResult, bool]:
    """Store the result once. Returns (result, stored_now); a replay by the attempt that already
    stored it gets the stored result back (its response may have been lost)."""
    job = get_job(session, job_id)
    if job.status == JobStatus.done:
        prev = session.exec(select(EvalResult).where(EvalResult.job_id == job_id)).first()
        if prev is not None and prev.attempt == req.attempt and prev.worker_id == req.worker_id:
            return prev, False
    job = _held(session, job_id, req.worker_id, req.attempt)
    check_metrics(req.metrics)
    spec = schemas.EvalSpec.model_validate(job.spec)
    result = EvalResult(
        job_id=job.id,
        attempt=req.attempt,
        worker_id=req.worker_id,
        checkpoint_id=job.checkpoint_id,
        run_id=job.run_id,
        step=job.step,
        task=job.task,
        grader_version=spec.grader_version,
        metrics=req.metrics,
        info=req.info,
        load_mode=req.load_mode,
        load_reason=req.load_reason,
    )
    session.add(result)
    store_samples(session, job.id, req.samples)
    flips.record_flips(session, result)  # adds flip_rate/learned/forgotten vs the previous checkpoint
    scores.index_metrics(session, result)  # what `best` queries
    transition(session, job, JobStatus.done, utcnow())
    outbox.queue_eval(session, session.get(Run, job.run_id), job.task, job.step, result.metrics)
    session.flush()
    return result, True


def fail(session: Session, job_id: int, req: schemas.FailRequest) -> EvalJob:
    job = _held(session, job_id, req.worker_id, req.attempt)
    _requeue_or_bury(session, job, utcnow(), req.error, retryable=req.retryable)
    return job


def release(session: Session, job_id: int, req: schemas.ReleaseRequest) -> EvalJob:
    """The worker hands the job back untouched (shutting down): queued again, and the attempt it
    used is given back."""
    job = _held(session, job_id, req.worker_id, req.attempt)
    transition(session, job, JobStatus.queued, utcnow())
    job.max_attempts += 1  # a hand-back is not a failed attempt
    return job
