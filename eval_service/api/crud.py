"""Ledger operations. Each function runs inside the caller's session/transaction; routes choose
`db.write()` (BEGIN IMMEDIATE) or `db.read()`. Errors are the small exception types below, which
the app maps onto HTTP statuses."""

from __future__ import annotations

import math
import os
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from eval_service.api.core.config import ServerSettings
from eval_service.api.models import (
    Checkpoint,
    EvalJob,
    EvalResult,
    Run,
    SampleRow,
    TrainMetric,
    WandbOutbox,
    utcnow,
)
from shared import schemas as S

ACTIVE_OR_DONE = ("queued", "leased", "done")

# --- errors -------------------------------------------------------------------------------------


class LedgerFault(Exception):
    status = 400

    def __init__(self, detail: Any):
        super().__init__(str(detail))
        self.detail = detail


class NotFound(LedgerFault):
    status = 404


class Conflict(LedgerFault):
    status = 409


class Invalid(LedgerFault):
    """422 naming the offending field, in FastAPI's validation-error shape."""

    status = 422

    def __init__(self, field: str, msg: str, where: str = "body"):
        super().__init__([{"loc": [where, field], "msg": msg, "type": "value_error"}])


# --- helpers ------------------------------------------------------------------------------------


def aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def insert_ignore(s: Session, model: type, rows: list[dict], conflict: list[str], returning: list[str]):
    """INSERT ... ON CONFLICT DO NOTHING RETURNING; the one dialect-specific upsert helper."""
    table = model.__table__  # type: ignore[attr-defined]
    dialect = s.get_bind().dialect.name
    ins = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
    stmt = ins(table).on_conflict_do_nothing(index_elements=conflict)
    stmt = stmt.returning(*[table.c[c] for c in returning])
    return s.execute(stmt, rows).all() if rows else []


def get_run(s: Session, ref: str | int, *, field: str | None = None) -> Run:
    """A run by id or by name."""
    run = None
    text = str(ref)
    if text.isdigit():
        run = s.get(Run, int(text))
    if run is None:
        run = s.exec(select(Run).where(Run.name == text)).first()
    if run is None:
        if field:
            raise Invalid(field, f"no run named or numbered {text!r}")
        raise NotFound(f"run {text!r} not found")
    return run


def run_read(run: Run) -> S.RunRead:
    return S.RunRead(
        id=run.id,
        name=run.name,
        base_model=run.base_model,
        primary_task=run.primary_task,
        config=run.config or {},
        wandb_run_id=run.wandb_run_id,
        created_at=aware(run.created_at),
    )


def checkpoint_read(c: Checkpoint) -> S.CheckpointRead:
    return S.CheckpointRead(
        id=c.id,
        run_id=c.run_id,
        step=c.step,
        path=c.path,
        kind=c.kind,
        fingerprint=c.fingerprint,
        created_at=aware(c.created_at),
    )


def job_read(s: Session, job: EvalJob, ckpt: Checkpoint | None = None) -> S.JobRead:
    ckpt = ckpt or s.get(Checkpoint, job.checkpoint_id)
    return S.JobRead(
        id=job.id,
        checkpoint_id=job.checkpoint_id,
        run_id=job.run_id,
        step=job.step,
        checkpoint_path=ckpt.path,
        checkpoint_kind=ckpt.kind,
        spec=S.EvalSpec.model_validate(job.spec),
        spec_hash=job.spec_hash,
        status=S.JobStatus(job.status),
        priority=job.priority,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        lease_owner=job.lease_owner,
        lease_expires_at=aware(job.lease_expires_at),
        last_error=job.last_error,
        created_at=aware(job.created_at),
        finished_at=aware(job.finished_at),
    )


def result_read(r: EvalResult) -> S.ResultRead:
    return S.ResultRead(
        job_id=r.job_id,
        checkpoint_id=r.checkpoint_id,
        step=r.step,
        task=r.task,
        grader_version=r.grader_version,
        metrics=r.metrics,
        info=r.info or {},
        created_at=aware(r.created_at),
    )


def lease_read(s: Session, job: EvalJob) -> S.Lease:
    return S.Lease(
        job=job_read(s, job),
        attempt=job.attempt,
        worker_id=job.lease_owner or "",
        lease_expires_at=aware(job.lease_expires_at),
    )


# --- runs & train metrics -----------------------------------------------------------------------


def create_run(s: Session, body: S.RunCreate) -> Run:
    """Idempotent by name: the existing run is returned unchanged (primary_task filled if unset)."""
    run = s.exec(select(Run).where(Run.name == body.name)).first()
    if run is not None:
        if run.primary_task is None and body.primary_task:
            run.primary_task = body.primary_task
            s.add(run)
        return run
    run = Run(
        name=body.name,
        base_model=body.base_model,
        primary_task=body.primary_task,
        config=body.config,
        wandb_run_id=uuid.uuid4().hex[:12],
    )
    s.add(run)
    s.flush()
    return run


def list_runs(s: Session) -> list[Run]:
    return list(s.exec(select(Run).order_by(Run.id)))


def ingest_train_metrics(s: Session, batch: S.TrainMetricsBatch) -> tuple[int, int]:
    """Store new rows (duplicates of run+step+key are ignored and counted) and queue them for W&B."""
    run = s.get(Run, batch.run_id)
    if run is None:
        raise Invalid("run_id", f"no run with id {batch.run_id}")
    for i, r in enumerate(batch.rows):
        if not math.isfinite(r.value):
            raise Invalid(f"rows.{i}.value", "must be a finite number")
    rows = [{"run_id": run.id, "step": r.step, "key": r.key, "value": r.value} for r in batch.rows]
    inserted = insert_ignore(s, TrainMetric, rows, ["run_id", "step", "key"], ["step", "key", "value"])
    by_step: dict[int, dict[str, float]] = defaultdict(dict)
    for step, key, value in inserted:
        by_step[step][key] = value
    if by_step:
        s.execute(
            WandbOutbox.__table__.insert(),  # type: ignore[attr-defined]
            [
                {"run_id": run.id, "payload": {"train/global_step": step, **vals}, "created_at": utcnow()}
                for step, vals in sorted(by_step.items())
            ],
        )
    return len(inserted), len(rows) - len(inserted)


def list_train_metrics(s: Session, run_ref: str, key: str | None) -> list[S.TrainMetricRow]:
    run = get_run(s, run_ref)
    q = select(TrainMetric).where(TrainMetric.run_id == run.id)
    if key:
        q = q.where(TrainMetric.key == key)
    q = q.order_by(TrainMetric.step, TrainMetric.key)
    return [S.TrainMetricRow(step=m.step, key=m.key, value=m.value) for m in s.exec(q)]


# --- checkpoints --------------------------------------------------------------------------------


def resolve_checkpoint_path(settings: ServerSettings, path: str, field: str = "path") -> str:
    """Resolve symlinks and `..`; the result must lie inside the checkpoint root."""
    if "\x00" in path:
        raise Invalid(field, "contains a NUL byte")
    root = os.path.realpath(settings.checkpoint_root)
    real = os.path.realpath(os.path.join(root, path))  # relative paths are taken from the root
    try:
        inside = os.path.commonpath([root, real]) == root
    except ValueError:
        inside = False
    if not inside:
        raise Invalid(field, f"{path!r} resolves to {real!r}, outside the checkpoint root {root!r}")
    return real


def register_checkpoint(s: Session, settings: ServerSettings, body: S.CheckpointCreate) -> Checkpoint:
    if s.get(Run, body.run_id) is None:
        raise Invalid("run_id", f"no run with id {body.run_id}")
    real = resolve_checkpoint_path(settings, body.path)
    existing = s.exec(
        select(Checkpoint).where(Checkpoint.run_id == body.run_id, Checkpoint.step == body.step)
    ).first()
    if existing is not None:
        if existing.fingerprint is None and body.fingerprint:
            existing.fingerprint = body.fingerprint
            s.add(existing)
        return existing
    ckpt = Checkpoint(
        run_id=body.run_id, step=body.step, path=real, kind=body.kind, fingerprint=body.fingerprint
    )
    s.add(ckpt)
    s.flush()
    return ckpt


def list_checkpoints(s: Session, run_ref: str) -> list[Checkpoint]:
    run = get_run(s, run_ref)
    return list(s.exec(select(Checkpoint).where(Checkpoint.run_id == run.id).order_by(Checkpoint.step)))


def _checkpoint_from_path(s: Session, settings: ServerSettings, body: S.JobCreate) -> Checkpoint:
    from shared.checkpoint import CheckpointError, checkpoint_step, detect_kind, read_marker

    real = resolve_checkpoint_path(settings, body.path or "")
    if not os.path.isdir(real):
        raise Invalid("path", f"{body.path!r} is not a directory")
    try:
        marker = read_marker(Path(real))
    except CheckpointError as e:
        raise Invalid("path", str(e)) from e
    run_ref = body.run or (marker.run if marker else None)
    if not run_ref:
        raise Invalid("run", "give the run to register this checkpoint under (no duet marker names one)")
    step = body.step
    if step is None:
        step = checkpoint_step(real)
        if step is None and marker is not None:
            step = marker.step
    if step is None:
        raise Invalid("step", f"cannot tell the step of {body.path!r}: give it (no checkpoint-N, no marker)")
    try:
        run = get_run(s, run_ref)
    except NotFound:
        try:
            run = create_run(s, S.RunCreate(name=run_ref))
        except ValueError as e:
            raise Invalid("run", f"{run_ref!r} is not a valid run name") from e
    kind = body.kind or (marker.kind if marker else detect_kind(Path(real)))
    existing = s.exec(select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.step == step)).first()
    if existing is not None:
        if existing.path != real:
            raise Invalid("path", f"run {run.name!r} already has step {step} at {existing.path!r}")
        return existing
    ckpt = Checkpoint(
        run_id=run.id, step=step, path=real, kind=kind, fingerprint=marker.fingerprint() if marker else None
    )
    s.add(ckpt)
    s.flush()
    return ckpt


# --- jobs (users) -------------------------------------------------------------------------------


def enqueue(s: Session, settings: ServerSettings, body: S.JobCreate) -> tuple[EvalJob, bool]:
    if body.checkpoint_id is not None:
        ckpt = s.get(Checkpoint, body.checkpoint_id)
        if ckpt is None:
            raise Invalid("checkpoint_id", f"no checkpoint with id {body.checkpoint_id}")
    elif body.path is not None:
        ckpt = _checkpoint_from_path(s, settings, body)
    else:
        run = get_run(s, body.run or "", field="run")
        ckpt = s.exec(
            select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.step == body.step)
        ).first()
        if ckpt is None:
            raise Invalid("step", f"run {run.name!r} has no checkpoint at step {body.step}")
    spec_hash = body.spec.fingerprint()
    if not body.force:
        same = s.exec(
            select(EvalJob)
            .where(
                EvalJob.checkpoint_id == ckpt.id,
                EvalJob.spec_hash == spec_hash,
                col(EvalJob.status).in_(ACTIVE_OR_DONE),
            )
            .order_by(col(EvalJob.id).desc())
        ).first()
        if same is not None:
            return same, False
    job = EvalJob(
        checkpoint_id=ckpt.id,
        run_id=ckpt.run_id,
        step=ckpt.step,
        task=body.spec.task,
        spec=body.spec.model_dump(mode="json"),
        spec_hash=spec_hash,
        priority=body.priority,
        max_attempts=settings.max_attempts,
    )
    s.add(job)
    s.flush()
    return job, True


def get_job(s: Session, job_id: int) -> EvalJob:
    job = s.get(EvalJob, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def list_jobs(s: Session, status: str | None, run_ref: str | None, limit: int) -> list[EvalJob]:
    q = select(EvalJob)
    if status:
        if status not in S.JobStatus.__members__:
            raise Invalid("status", f"unknown status {status!r}; one of {', '.join(S.JobStatus)}", "query")
        q = q.where(EvalJob.status == status)
    if run_ref:
        q = q.where(EvalJob.run_id == get_run(s, run_ref).id)
    return list(s.exec(q.order_by(col(EvalJob.id).desc()).limit(limit)))


def cancel(s: Session, job_id: int) -> EvalJob:
    job = get_job(s, job_id)
    if job.status in ("done", "dead"):
        raise Conflict(f"job {job_id} is {job.status}; only queued or leased jobs can be cancelled")
    if job.status != "cancelled":
        job.status, job.lease_owner, job.lease_expires_at = "cancelled", None, None
        job.finished_at = utcnow()
        s.add(job)
    return job


def retry(s: Session, settings: ServerSettings, job_id: int) -> EvalJob:
    """dead/cancelled -> queued with a fresh allowance of attempts (attempt numbers keep growing so
    a straggler from an old attempt still gets 409)."""
    job = get_job(s, job_id)
    if job.status not in ("dead", "cancelled"):
        raise Conflict(f"job {job_id} is {job.status}; only dead or cancelled jobs can be retried")
    job.status, job.finished_at = "queued", None
    job.max_attempts = job.attempt + settings.max_attempts
    s.add(job)
    return job


# --- jobs (workers) -----------------------------------------------------------------------------


def expire_leases(s: Session, now: datetime | None = None) -> int:
    """Re-queue leased jobs whose lease has passed; jobs out of attempts become dead."""
    now = now or utcnow()
    expired = list(
        s.exec(select(EvalJob).where(EvalJob.status == "leased", col(EvalJob.lease_expires_at) < now))
    )
    for job in expired:
        dead = job.attempt >= job.max_attempts
        job.status = "dead" if dead else "queued"
        job.last_error = "lease expired"
        job.lease_owner, job.lease_expires_at = None, None
        job.finished_at = now if dead else None
        s.add(job)
    return len(expired)


def claim(s: Session, req: S.ClaimRequest) -> EvalJob | None:
    now = utcnow()
    expire_leases(s, now)
    q = select(EvalJob.id).where(EvalJob.status == "queued")
    if req.run_id is not None:
        q = q.where(EvalJob.run_id == req.run_id)
    if req.tasks:
        q = q.where(col(EvalJob.task).in_(req.tasks))
    q = q.order_by(col(EvalJob.priority).desc(), col(EvalJob.step).desc(), col(EvalJob.id)).limit(1)
    job_id = s.exec(q).first()
    if job_id is None:
        return None
    # Guarded on status: atomic under BEGIN IMMEDIATE, and still correct under other databases.
    res = s.execute(
        update(EvalJob)
        .where(col(EvalJob.id) == job_id, col(EvalJob.status) == "queued")
        .values(
            status="leased",
            attempt=EvalJob.attempt + 1,
            lease_owner=req.worker_id,
            lease_expires_at=now + timedelta(seconds=req.lease_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        return None
    job = s.get(EvalJob, job_id)
    s.refresh(job)
    return job


def _held(s: Session, job_id: int, worker_id: str, attempt: int) -> EvalJob:
    """The job, if it is still leased to exactly this attempt; else 409 (a stale attempt)."""
    job = get_job(s, job_id)
    if job.status != "leased" or job.attempt != attempt or job.lease_owner != worker_id:
        raise Conflict(
            f"job {job_id}: attempt {attempt} by {worker_id!r} is stale "
            f"(job is {job.status}, attempt {job.attempt}, owner {job.lease_owner!r})"
        )
    if job.lease_expires_at is not None and job.lease_expires_at < utcnow():
        raise Conflict(f"job {job_id}: the lease of attempt {attempt} expired")
    return job


def heartbeat(s: Session, job_id: int, req: S.HeartbeatRequest) -> EvalJob:
    job = _held(s, job_id, req.worker_id, req.attempt)
    job.lease_expires_at = utcnow() + timedelta(seconds=req.lease_seconds)
    s.add(job)
    return job


def _eval_payload(run: Run, task: str, step: int, metrics: dict[str, float]) -> dict[str, Any]:
    if run.wandb_primary_task is None:
        run.wandb_primary_task = run.primary_task or task
    prefix = "eval/" if task == run.wandb_primary_task else f"eval/{task}/"
    return {"train/global_step": step, **{prefix + k: v for k, v in metrics.items()}}


def _check_metrics(metrics: dict[str, float]) -> None:
    for k in metrics:
        # Names are relative to `eval/`: 'accuracy', or grouped like 'fail/truncated'.
        if not k or k.startswith(("/", "eval/", "train/")) or k.endswith("/") or "//" in k:
            raise Invalid(
                f"metrics.{k}",
                "metric names are relative like 'accuracy' or 'fail/truncated' (no eval/ prefix)",
            )


def _store_samples(s: Session, job_id: int, samples: list[S.Sample]) -> None:
    if samples:
        s.execute(
            SampleRow.__table__.insert(),  # type: ignore[attr-defined]
            [{"job_id": job_id, **x.model_dump()} for x in samples],
        )


def complete(s: Session, job_id: int, req: S.CompleteRequest) -> tuple[EvalResult, bool]:
    """Store the result once. Returns (result, stored_now); a replay by the attempt that already
    stored it gets the stored result back (its response may have been lost)."""
    job = get_job(s, job_id)
    if job.status == "done":
        prev = s.exec(select(EvalResult).where(EvalResult.job_id == job_id)).first()
        if prev is not None and prev.attempt == req.attempt and prev.worker_id == req.worker_id:
            return prev, False
    job = _held(s, job_id, req.worker_id, req.attempt)
    _check_metrics(req.metrics)
    run = s.get(Run, job.run_id)
    spec = S.EvalSpec.model_validate(job.spec)
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
    )
    s.add(result)
    _store_samples(s, job.id, req.samples)
    job.status, job.finished_at = "done", utcnow()
    job.lease_expires_at = None
    s.add(job)
    s.add(WandbOutbox(run_id=run.id, payload=_eval_payload(run, job.task, job.step, req.metrics)))
    s.add(run)
    s.flush()
    return result, True


def fail(s: Session, job_id: int, req: S.FailRequest) -> EvalJob:
    job = _held(s, job_id, req.worker_id, req.attempt)
    dead = not req.retryable or job.attempt >= job.max_attempts
    job.status = "dead" if dead else "queued"
    job.last_error = req.error
    job.lease_owner, job.lease_expires_at = None, None
    job.finished_at = utcnow() if dead else None
    s.add(job)
    return job


def release(s: Session, job_id: int, req: S.ReleaseRequest) -> EvalJob:
    job = _held(s, job_id, req.worker_id, req.attempt)
    job.status, job.lease_owner, job.lease_expires_at = "queued", None, None
    job.max_attempts += 1  # a hand-back is not a failed attempt
    s.add(job)
    return job


# --- results ------------------------------------------------------------------------------------


def get_result(s: Session, job_id: int) -> EvalResult:
    get_job(s, job_id)
    r = s.exec(select(EvalResult).where(EvalResult.job_id == job_id)).first()
    if r is None:
        raise NotFound(f"job {job_id} has no result yet")
    return r


def list_samples(
    s: Session, job_id: int, correct: bool | None, category: str | None, offset: int, limit: int
) -> S.SamplePage:
    get_job(s, job_id)
    conds = [SampleRow.job_id == job_id]
    if correct is not None:
        conds.append(SampleRow.correct == correct)
    if category:
        conds.append(SampleRow.category == category)
    total = s.exec(select(func.count()).select_from(SampleRow).where(*conds)).one()
    rows = s.exec(
        select(SampleRow)
        .where(*conds)
        .order_by(SampleRow.index, SampleRow.sample, SampleRow.id)
        .offset(offset)
        .limit(limit)
    )
    items = [S.Sample.model_validate(r.model_dump(exclude={"id", "job_id"})) for r in rows]
    return S.SamplePage(total=total, offset=offset, limit=limit, items=items)


def regrade(s: Session, job_id: int, grader_version: str, metrics: dict[str, float], samples: list[S.Sample]):
    r = get_result(s, job_id)
    _check_metrics(metrics)
    r.grader_version, r.metrics = grader_version, metrics
    s.add(r)
    s.execute(SampleRow.__table__.delete().where(SampleRow.__table__.c.job_id == job_id))  # type: ignore[attr-defined]
    _store_samples(s, job_id, samples)
    run = s.get(Run, r.run_id)
    s.add(WandbOutbox(run_id=run.id, payload=_eval_payload(run, r.task, r.step, metrics)))
    s.add(run)
    return r


# --- score queries ------------------------------------------------------------------------------


def resolve_task(s: Session, run: Run, task: str | None) -> str | None:
    """The task a score query is about: the given one, the run's only one, or its primary task."""
    tasks = sorted(s.exec(select(EvalResult.task).where(EvalResult.run_id == run.id).distinct()))
    if task is not None:
        if task not in tasks:
            raise Invalid("task", f"run {run.name!r} has no results for task {task!r}; has {tasks}", "query")
        return task
    if len(tasks) <= 1:
        return tasks[0] if tasks else None
    if run.primary_task in tasks:
        return run.primary_task
    raise Invalid("task", f"run {run.name!r} has results for several tasks {tasks}: give one", "query")


def _latest_results(
    s: Session, run_id: int, task: str, ckpt_ids: list[int] | None = None
) -> list[tuple[int, int, str, str, dict[str, float]]]:
    """(checkpoint_id, step, path, kind, metrics) per checkpoint, newest result winning, by step."""
    q = (
        select(
            EvalResult.checkpoint_id, Checkpoint.step, Checkpoint.path, Checkpoint.kind, EvalResult.metrics
        )
        .join(Checkpoint, col(Checkpoint.id) == EvalResult.checkpoint_id)
        .where(EvalResult.run_id == run_id, EvalResult.task == task)
        .order_by(col(EvalResult.id))
    )
    if ckpt_ids is not None:
        q = q.where(col(EvalResult.checkpoint_id).in_(ckpt_ids))
    latest = {row[0]: tuple(row) for row in s.exec(q)}
    return sorted(latest.values(), key=lambda r: (r[1], r[0]))


def _score_row(r: tuple) -> S.ScoreRow:
    cid, step, path, kind, metrics = r
    return S.ScoreRow(
        checkpoint_id=cid,
        step=step,
        path=path,
        kind=kind,
        metrics={f"eval/{k}": v for k, v in metrics.items()},
    )


def _score_rows(s: Session, run_id: int, task: str, ckpt_ids: list[int] | None = None) -> list[S.ScoreRow]:
    return [_score_row(r) for r in _latest_results(s, run_id, task, ckpt_ids)]


def scores(s: Session, run_ref: str, task: str | None) -> list[S.ScoreRow]:
    run = get_run(s, run_ref)
    t = resolve_task(s, run, task)
    return [] if t is None else _score_rows(s, run.id, t)


def best(
    s: Session, run_ref: str, metric: str, mode: Literal["max", "min"], task: str | None
) -> S.BestResult:
    run = get_run(s, run_ref)
    t = resolve_task(s, run, task)
    if t is None:
        raise NotFound(f"run {run.name!r} has no eval results yet")
    key = metric if metric.startswith("eval/") else f"eval/{metric}"
    name = key.removeprefix("eval/")
    results = _latest_results(s, run.id, t)
    rows = [r for r in results if name in r[4] and not math.isnan(r[4][name])]
    if not rows:
        known = sorted({f"eval/{k}" for r in results for k in r[4]})
        raise Invalid(
            "metric", f"unknown metric {key!r} for run {run.name!r} task {t!r}; known: {known}", "query"
        )
    sign = 1 if mode == "max" else -1
    # ties go to the earliest checkpoint
    row = max(rows, key=lambda r: (sign * r[4][name], -r[1]))
    return S.BestResult(metric=key, mode=mode, row=_score_row(row))


def compare(s: Session, a: int, b: int, task: str | None) -> S.CompareResult:
    ca, cb = s.get(Checkpoint, a), s.get(Checkpoint, b)
    for name, c, cid in (("a", ca, a), ("b", cb, b)):
        if c is None:
            raise Invalid(name, f"no checkpoint with id {cid}", "query")
    run = s.get(Run, ca.run_id)
    t = resolve_task(s, run, task)
    if t is None:
        raise NotFound(f"run {run.name!r} has no eval results yet")
    rows = {r.checkpoint_id: r for r in _score_rows(s, ca.run_id, t, [a])}
    rows.update({r.checkpoint_id: r for r in _score_rows(s, cb.run_id, t, [b])})
    for name, cid in (("a", a), ("b", b)):
        if cid not in rows:
            raise NotFound(f"checkpoint {cid} ({name}) has no result for task {t!r}")
    ra, rb = rows[a], rows[b]
    delta = {k: rb.metrics[k] - ra.metrics[k] for k in ra.metrics if k in rb.metrics}
    return S.CompareResult(a=ra, b=rb, delta=delta)


# --- outbox -------------------------------------------------------------------------------------


def outbox_pending(s: Session) -> int:
    return s.exec(
        select(func.count()).select_from(WandbOutbox).where(col(WandbOutbox.sent_at).is_(None))
    ).one()


def outbox_next(s: Session, limit: int) -> list[WandbOutbox]:
    return list(
        s.exec(
            select(WandbOutbox)
            .where(col(WandbOutbox.sent_at).is_(None))
            .order_by(WandbOutbox.id)
            .limit(limit)
        )
    )


def outbox_mark_sent(s: Session, ids: list[int]) -> None:
    if ids:
        s.execute(
            update(WandbOutbox)
            .where(col(WandbOutbox.id).in_(ids))
            .values(sent_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def queue_depth(s: Session) -> dict[str, int]:
    rows = s.exec(select(EvalJob.status, func.count()).group_by(EvalJob.status)).all()
    return {status: n for status, n in rows}
