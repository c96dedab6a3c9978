"""The wire contract between the ledger (eval_service.api) and its clients (worker, trainer, CLI).

Pydantic models only: importing this module must stay cheap (no torch, no vllm, no sqlmodel).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# --- runs -------------------------------------------------------------------------------------


class RunCreate(BaseModel):
    """Register a run; idempotent by name (the same name returns the existing run)."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._\-]+$")
    base_model: str | None = None
    # The task whose eval metrics are the run's headline `eval/<metric>` keys in W&B.
    primary_task: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class RunRead(BaseModel):
    id: int
    name: str
    base_model: str | None
    primary_task: str | None
    config: dict[str, Any]
    wandb_run_id: str
    created_at: datetime


# --- train metrics ----------------------------------------------------------------------------


class TrainMetricRow(BaseModel):
    step: int = Field(ge=0)
    key: str = Field(min_length=1, max_length=200)  # e.g. "train/loss"
    value: float


class TrainMetricsBatch(BaseModel):
    """A batch of train metrics. Re-sending rows already stored is harmless (unique run+step+key)."""

    run_id: int
    rows: list[TrainMetricRow] = Field(max_length=100_000)


class IngestResult(BaseModel):
    inserted: int
    duplicates: int


# --- checkpoints ------------------------------------------------------------------------------

CheckpointKind = Literal["full", "lora"]


class CheckpointCreate(BaseModel):
    """Register a checkpoint; idempotent on (run_id, step)."""

    run_id: int
    step: int = Field(ge=0)
    path: str = Field(min_length=1)
    kind: CheckpointKind = "full"
    fingerprint: str | None = None


class CheckpointRead(BaseModel):
    id: int
    run_id: int
    step: int
    path: str
    kind: CheckpointKind
    fingerprint: str | None
    created_at: datetime


# --- eval jobs --------------------------------------------------------------------------------


class SamplingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    n: int = Field(1, ge=1, le=64)
    seed: int = 0
    logprobs: bool = True  # needed for the token-entropy metric


class EvalSpec(BaseModel):
    """What to evaluate a checkpoint on. Two jobs with equal specs on one checkpoint are duplicates."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1)
    dataset: str | None = None  # task-specific data reference (file path, split); None = task default
    limit: int | None = Field(None, ge=1)  # number of eval examples; None = all
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    grader_version: str = "1"
    options: dict[str, Any] = Field(default_factory=dict)  # task options (e.g. custom field mapping)

    def fingerprint(self) -> str:
        canon = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:32]


class JobStatus(StrEnum):
    queued = "queued"
    leased = "leased"
    done = "done"
    dead = "dead"
    cancelled = "cancelled"


# A job in one of these still has work ahead of it; the others are final and never change again.
ACTIVE_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.queued, JobStatus.leased})
FINISHED_STATUSES: frozenset[JobStatus] = frozenset(JobStatus) - ACTIVE_STATUSES


class JobCreate(BaseModel):
    """Enqueue an eval job by checkpoint id, or by path, or by run+step."""

    checkpoint_id: int | None = None
    path: str | None = None
    run: str | None = None  # run name or id; with `step`, or with `path` to register it under
    step: int | None = Field(None, ge=0)
    kind: CheckpointKind | None = None  # when registering by path; None = detect
    spec: EvalSpec
    priority: int = 0
    force: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> JobCreate:
        if self.checkpoint_id is None and self.path is None and (self.run is None or self.step is None):
            raise ValueError("give checkpoint_id, or path, or run and step")
        return self


class JobRead(BaseModel):
    id: int
    checkpoint_id: int
    run_id: int
    step: int
    checkpoint_path: str
    checkpoint_kind: CheckpointKind
    spec: EvalSpec
    spec_hash: str
    status: JobStatus
    priority: int
    attempt: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class EnqueueResult(BaseModel):
    job: JobRead
    created: bool  # False when an equal job already existed and `force` was not set


class ClaimRequest(BaseModel):
    worker_id: str = Field(min_length=1, max_length=200)
    lease_seconds: float = Field(60.0, gt=0, le=3600)
    run_id: int | None = None  # only claim jobs of this run
    tasks: list[str] | None = None  # only claim jobs for these tasks


class Lease(BaseModel):
    """A claimed job. Every later write for it must carry `attempt`; stale attempts get 409."""

    job: JobRead
    attempt: int
    worker_id: str
    lease_expires_at: datetime


class HeartbeatRequest(BaseModel):
    worker_id: str
    attempt: int
    lease_seconds: float = Field(60.0, gt=0, le=3600)


class Sample(BaseModel):
    """One generated answer, graded."""

    index: int = Field(ge=0)  # example index within the eval set
    sample: int = Field(0, ge=0)  # which of the n generations for that example
    prompt: str
    response: str
    gold: str
    extracted: str | None = None
    correct: bool
    format_ok: bool
    category: str  # "correct", "wrong_answer", or a format-failure category
    num_tokens: int = Field(0, ge=0)
    finish_reason: str | None = None
    mean_entropy: float | None = None


class CompleteRequest(BaseModel):
    worker_id: str
    attempt: int
    metrics: dict[str, float]  # bare names, e.g. {"accuracy": 0.41, "format_accuracy": 0.9}
    samples: list[Sample] = Field(default_factory=list)
    info: dict[str, Any] = Field(default_factory=dict)  # timings, engine events (swap/rebuild), versions


MAX_ERROR_CHARS = 20_000  # the longest `FailRequest.error` the ledger stores


class FailRequest(BaseModel):
    worker_id: str
    attempt: int
    error: str = Field(max_length=MAX_ERROR_CHARS)
    retryable: bool = True  # False: no point retrying (e.g. checkpoint refused) -> dead at once

    @classmethod
    def clipped(cls, *, worker_id: str, attempt: int, error: str, retryable: bool = True) -> FailRequest:
        """A FailRequest whose error keeps only its last MAX_ERROR_CHARS characters: the end of a
        traceback says what broke, so that is the part worth storing."""
        return cls(worker_id=worker_id, attempt=attempt, error=error[-MAX_ERROR_CHARS:], retryable=retryable)


class ReleaseRequest(BaseModel):
    """Give a leased job back untouched (worker shutting down); does not count as an attempt failure."""

    worker_id: str
    attempt: int


class RegradeRequest(BaseModel):
    """Admin: replace a finished job's metrics and samples with a re-grade by `grader_version`."""

    grader_version: str
    metrics: dict[str, float]
    samples: list[Sample] = Field(default_factory=list)


# --- results & queries ------------------------------------------------------------------------


class ResultRead(BaseModel):
    job_id: int
    checkpoint_id: int
    step: int
    task: str
    grader_version: str
    metrics: dict[str, float]
    info: dict[str, Any]
    created_at: datetime


class ScoreRow(BaseModel):
    """One checkpoint of a run with every eval metric (keys `eval/<name>`)."""

    checkpoint_id: int
    step: int
    path: str
    kind: CheckpointKind
    metrics: dict[str, float]


class BestResult(BaseModel):
    metric: str
    mode: Literal["max", "min"]
    row: ScoreRow


class CompareResult(BaseModel):
    a: ScoreRow
    b: ScoreRow
    delta: dict[str, float]  # b - a for every metric present in both


class SamplePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[Sample]
