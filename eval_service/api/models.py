"""Ledger tables (SQLModel). Times are UTC and come back timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Index,
    String,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlmodel import Field, SQLModel

from shared.schemas import CheckpointState, JobStatus, Sample


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime | None) -> datetime | None:
    """`dt` in UTC; a naive value is taken to be UTC already."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """DATETIME that reads back aware UTC: some databases return naive values, and the API
    schemas are built straight from the rows."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        # Naive UTC: an aware value bound to TIMESTAMP WITHOUT TIME ZONE is converted through the
        # session's time zone by Postgres, and reads back shifted on a server not set to UTC.
        utc = as_utc(value)
        return None if utc is None else utc.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value)


def _utc_field(**kwargs: Any) -> Any:
    """A datetime column of UTCDateTime."""
    return Field(sa_type=UTCDateTime, **kwargs)


class JobStatusString(TypeDecorator[JobStatus]):
    """A job status stored as its plain string value and read back as a `JobStatus`."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else JobStatus(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> JobStatus | None:
        return None if value is None else JobStatus(value)


class CheckpointStateString(TypeDecorator[CheckpointState]):
    """A checkpoint state stored as its plain string value and read back as a `CheckpointState`."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else CheckpointState(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> CheckpointState | None:
        return None if value is None else CheckpointState(value)


class Run(SQLModel, table=True):
    __tablename__ = "runs"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    base_model: str | None = None
    primary_task: str | None = None
    # The task whose metrics get the bare `eval/<name>` W&B keys: primary_task, else the first evaluated.
    wandb_primary_task: str | None = None
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    wandb_run_id: str
    created_at: datetime = _utc_field(default_factory=utcnow)


class Checkpoint(SQLModel, table=True):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_checkpoint_run_step"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    step: int
    path: str
    kind: str = "full"
    fingerprint: str | None = None
    created_at: datetime = _utc_field(default_factory=utcnow)
    # The training stage that wrote it (schemas.Algorithm: its marker's `algorithm`); None: base model.
    algorithm: str | None = None
    # Retention (crud.retention): present -> deleting (granted) -> deleted (the trainer removed it).
    state: CheckpointState = Field(
        default=CheckpointState.present,
        sa_type=CheckpointStateString,
        sa_column_kwargs={"server_default": CheckpointState.present.value},
    )
    pinned: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    deleted_at: datetime | None = _utc_field(default=None)


class EvalJob(SQLModel, table=True):
    __tablename__ = "eval_jobs"
    __table_args__ = (
        Index("ix_jobs_dedupe", "checkpoint_id", "spec_hash", "status"),
        Index("ix_jobs_run", "run_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    checkpoint_id: int = Field(foreign_key="checkpoints.id")
    run_id: int = Field(foreign_key="runs.id")
    step: int  # copied from the checkpoint for the claim order
    task: str
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    spec_hash: str
    status: JobStatus = Field(default=JobStatus.queued, sa_type=JobStatusString)
    priority: int = 0
    attempt: int = 0
    max_attempts: int = 3
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _utc_field(default=None, index=True)
    last_error: str | None = None
    created_at: datetime = _utc_field(default_factory=utcnow)
    finished_at: datetime | None = _utc_field(default=None)


class EvalResult(SQLModel, table=True):
    __tablename__ = "eval_results"
    __table_args__ = (Index("ix_results_scores", "run_id", "task", "checkpoint_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="eval_jobs.id", unique=True)
    attempt: int  # the attempt that stored it: a replay of that attempt gets it back
    worker_id: str
    checkpoint_id: int = Field(foreign_key="checkpoints.id")
    run_id: int = Field(foreign_key="runs.id")
    step: int
    task: str
    grader_version: str
    metrics: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    info: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    load_mode: str | None = None  # shared.schemas.LoadMode; None from workers that predate it
    load_reason: str | None = None
    created_at: datetime = _utc_field(default_factory=utcnow)


class SampleRow(SQLModel, Sample, table=True):
    """One graded sample of a job: the columns are the fields of the wire schema `Sample`."""

    __tablename__ = "samples"
    __table_args__ = (
        Index("ix_samples_job_correct", "job_id", "correct"),
        Index("ix_samples_job_category", "job_id", "category"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="eval_jobs.id", index=True)


# `Sample` bounds its text fields for the wire (shared/fields.py); the columns stay unbounded VARCHAR
# as 0.1.0 made them: the limit is the API's, and Postgres would otherwise enforce a second one.
for _column in SampleRow.__table__.columns:  # type: ignore[attr-defined]
    if getattr(_column.type, "length", None):
        _column.type = String()


class TrainMetric(SQLModel, table=True):
    __tablename__ = "train_metrics"
    __table_args__ = (UniqueConstraint("run_id", "step", "key", name="uq_train_metric"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    step: int
    key: str
    value: float


class WandbOutbox(SQLModel, table=True):
    """Rows waiting to be logged to W&B; written in the same transaction as the data they carry."""

    __tablename__ = "wandb_outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # includes train/global_step
    created_at: datetime = _utc_field(default_factory=utcnow)
    sent_at: datetime | None = _utc_field(default=None)


class EvalMetric(SQLModel, table=True):
    """One metric of the current result of a (checkpoint, task): `best` is one indexed query.

    Only the newest result of a checkpoint and task has rows here (a newer result or a regrade
    replaces them), so the table holds exactly what `scores` shows. NaN is stored as NULL."""

    __tablename__ = "eval_metrics"
    __table_args__ = (Index("ix_eval_metrics_best", "run_id", "task", "key", "value", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    result_id: int = Field(foreign_key="eval_results.id", index=True)
    checkpoint_id: int = Field(foreign_key="checkpoints.id")
    run_id: int = Field(foreign_key="runs.id")
    task: str
    step: int
    key: str  # bare name, as in EvalResult.metrics
    value: float | None = None


class LeaderLease(SQLModel, table=True):
    """Who runs a singleton background job (W&B drain, lease sweep) among several API replicas.

    A row per job; a replica holds it while `expires_at` is ahead and renews it before each round,
    so a dead replica's lease simply runs out and another takes over."""

    __tablename__ = "leader_leases"

    name: str = Field(primary_key=True)
    holder: str
    expires_at: datetime = _utc_field()


# Claim order (priority DESC, step DESC, id) served straight from an index.
_jobs = EvalJob.__table__.c  # type: ignore[attr-defined]
Index("ix_jobs_claim", _jobs.status, _jobs.priority.desc(), _jobs.step.desc(), _jobs.id)
