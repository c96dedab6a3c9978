"""Eval specs, jobs, leases and the worker's writes on the wire."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.fields import (
    MAX_ERROR_CHARS,
    ErrorText,
    Finite,
    Id,
    Int64,
    JsonObject,
    Metrics,
    Name,
    PathText,
    SampleText,
    Text,
)
from shared.schemas.runs import CheckpointKind

ENTRY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"


class SamplingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: Id = Field(256, ge=1)
    n: int = Field(1, ge=1, le=64)
    seed: Int64 = 0
    logprobs: bool = True  # needed for the token-entropy metric


class EvalSpec(BaseModel):
    """What to evaluate a checkpoint on. Two jobs with equal specs on one checkpoint are duplicates."""

    model_config = ConfigDict(extra="forbid")

    task: Name
    # The suite entry this job belongs to: results are stored (and namespaced) under this name;
    # None = under the task name (a worker started with --task).
    name: str | None = Field(None, max_length=100, pattern=ENTRY_NAME_PATTERN)
    dataset: PathText | None = None  # task-specific data reference (file path, split); None = task default
    limit: Id | None = Field(None, ge=1)  # number of eval examples; None = all
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    grader_version: Name = "1"
    options: JsonObject = Field(default_factory=dict)  # task options (e.g. custom field mapping)

    @property
    def result_name(self) -> str:
        """What results of this spec are stored under: the suite entry, else the task."""
        return self.name or self.task

    def fingerprint(self) -> str:
        data = self.model_dump(mode="json")
        if data["name"] is None:  # specs from before suites keep their fingerprint (dedupe)
            del data["name"]
        canon = json.dumps(data, sort_keys=True, separators=(",", ":"))
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


class LoadMode(StrEnum):
    """How the worker's engine came to serve a job's checkpoint."""

    initial = "initial"  # the engine's first build (nothing to swap from)
    swap = "swap"  # weights reloaded in place into the running engine
    rebuild = "rebuild"  # the engine was torn down and built again (the reason says why)
    lora = "lora"  # an adapter served over the loaded base, no weight reload
    reuse = "reuse"  # the checkpoint was already loaded (the next job of its suite): nothing loaded


class JobCreate(BaseModel):
    """Enqueue an eval job by checkpoint id, or by path, or by run+step."""

    checkpoint_id: Id | None = None
    path: PathText | None = None
    run: Name | None = None  # run name or id; with `step`, or with `path` to register it under
    step: Id | None = None
    kind: CheckpointKind | None = None  # when registering by path; None = detect
    spec: EvalSpec
    priority: Int64 = 0
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
    worker_id: Name
    lease_seconds: float = Field(60.0, gt=0, le=3600)
    run_id: Id | None = None  # only claim jobs of this run
    tasks: list[Name] | None = Field(None, max_length=1000)  # only claim jobs for these tasks
    # The checkpoint the worker has loaded: its queued jobs come first, so a suite costs one swap.
    prefer_checkpoint_id: Id | None = None


class Lease(BaseModel):
    """A claimed job. Every later write for it must carry `attempt`; stale attempts get 409."""

    job: JobRead
    attempt: int
    worker_id: str
    lease_expires_at: datetime


class HeartbeatRequest(BaseModel):
    worker_id: Name
    attempt: Id
    lease_seconds: float = Field(60.0, gt=0, le=3600)


class Sample(BaseModel):
    """One generated answer, graded."""

    index: Id  # example index within the eval set
    # The question's identity across checkpoints (the task's example id, the harness doc_id);
    # None from older workers: the index stands in.
    question_id: Name | None = None
    sample: Id = 0  # which of the n generations for that example
    prompt: SampleText
    response: SampleText
    gold: SampleText
    extracted: SampleText | None = None
    correct: bool  # strict: format satisfied and answer equal
    format_ok: bool
    # format-free: the committed answer equals the gold; None on samples graded before grader "2"
    answer_correct: bool | None = None
    category: Name  # "correct", "wrong_answer", or a format-failure category
    num_tokens: Id = 0
    finish_reason: Name | None = None
    mean_entropy: Finite | None = None


class CompleteRequest(BaseModel):
    worker_id: Name
    attempt: Id
    metrics: Metrics  # bare names, e.g. {"accuracy": 0.41, "format_accuracy": 0.9}
    samples: list[Sample] = Field(default_factory=list)
    info: JsonObject = Field(default_factory=dict)  # timings, engine events (swap/rebuild), versions
    load_mode: LoadMode | None = None  # None: a worker older than load-mode reporting
    load_reason: Text | None = Field(None, max_length=2000)  # why a rebuild happened


class FailRequest(BaseModel):
    worker_id: Name
    attempt: Id
    error: ErrorText
    retryable: bool = True  # False: no point retrying (e.g. checkpoint refused) -> dead at once

    @classmethod
    def clipped(cls, *, worker_id: str, attempt: int, error: str, retryable: bool = True) -> FailRequest:
        """A FailRequest whose error keeps only its last MAX_ERROR_CHARS characters: the end of a
        traceback says what broke, so that is the part worth storing."""
        return cls(worker_id=worker_id, attempt=attempt, error=error[-MAX_ERROR_CHARS:], retryable=retryable)


class ReleaseRequest(BaseModel):
    """Give a leased job back untouched (worker shutting down); does not count as an attempt failure."""

    worker_id: Name
    attempt: Id


class RegradeRequest(BaseModel):
    """Admin: replace a finished job's metrics and samples with a re-grade by `grader_version`."""

    grader_version: Name
    metrics: Metrics
    samples: list[Sample] = Field(default_factory=list)
