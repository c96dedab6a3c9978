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
    StoredMetrics,
    Text,
)

# --- runs -------------------------------------------------------------------------------------


class RunCreate(BaseModel):
    """Register a run; idempotent by name (the same name returns the existing run)."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._\-]+$")
    base_model: PathText | None = None
    # The task whose eval metrics are the run's headline `eval/<metric>` keys in W&B.
    primary_task: Name | None = None
    config: JsonObject = Field(default_factory=dict)  # shown by GET /v1/runs/{run} only


class RunSummary(BaseModel):
    """A run as listed by GET /v1/runs: everything but its config (which may be large)."""

    id: int
    name: str
    base_model: str | None
    primary_task: str | None
    wandb_run_id: str
    created_at: datetime


class RunRead(RunSummary):
    config: dict[str, Any]


# --- train metrics ----------------------------------------------------------------------------


class TrainMetricRow(BaseModel):
    step: Id
    key: Name  # e.g. "train/loss"
    value: Finite


class TrainMetricsBatch(BaseModel):
    """A batch of train metrics. Re-sending rows already stored is harmless (unique run+step+key)."""

    run_id: Id
    rows: list[TrainMetricRow] = Field(max_length=100_000)


class IngestResult(BaseModel):
    inserted: int
    duplicates: int


# --- checkpoints ------------------------------------------------------------------------------

CheckpointKind = Literal["full", "lora"]


class Algorithm(StrEnum):
    """The training stage that wrote a checkpoint (its marker's `algorithm`), kept by the ledger
    with the checkpoint and shown as the `stage` of each score."""

    sft = "sft"  # TRL SFTTrainer on the task's worked solutions
    grpo = "grpo"  # TRL GRPOTrainer with duet's grader as the reward

    @property
    def stage(self) -> int:
        """The number logged as `train/stage` and `eval/stage` (W&B plots numbers): sft 0, grpo 1."""
        return list(Algorithm).index(self)


class CheckpointCreate(BaseModel):
    """Register a checkpoint; idempotent on (run_id, step)."""

    run_id: Id
    step: Id
    path: PathText
    kind: CheckpointKind = "full"
    fingerprint: Name | None = None
    algorithm: Algorithm | None = None  # from the marker; None: a base model or a foreign checkpoint


class CheckpointState(StrEnum):
    """Where a checkpoint's files are, as retention moves them: granted for deletion by the ledger
    (`deleting`: nothing may be queued on it any more), then reported gone by the trainer."""

    present = "present"
    deleting = "deleting"
    deleted = "deleted"


class CheckpointRead(BaseModel):
    id: int
    run_id: int
    step: int
    path: str
    kind: CheckpointKind
    fingerprint: str | None
    created_at: datetime
    algorithm: Algorithm | None = None
    state: CheckpointState = CheckpointState.present
    pinned: bool = False  # a pinned checkpoint is never granted for deletion
    deleted_at: datetime | None = None


# --- eval jobs --------------------------------------------------------------------------------

# A suite entry's name: a path segment of its metric keys (`eval/<name>/accuracy`).
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


# --- results & queries ------------------------------------------------------------------------


class ResultRead(BaseModel):
    job_id: int
    checkpoint_id: int
    step: int
    task: str
    grader_version: str
    metrics: StoredMetrics
    info: dict[str, Any]
    load_mode: LoadMode | None = None
    load_reason: str | None = None
    created_at: datetime


class ScoreRow(BaseModel):
    """One checkpoint of a run with every eval metric (keys `eval/<name>`)."""

    checkpoint_id: int
    step: int
    path: str
    kind: CheckpointKind
    metrics: StoredMetrics
    load_mode: LoadMode | None = None  # how the worker loaded the checkpoint for this result
    grader_version: Name | None = None  # the grader that produced these metrics
    # deleted by retention: the files are gone, the results stay
    checkpoint_state: CheckpointState = CheckpointState.present
    algorithm: Algorithm | None = None  # the stage that wrote the checkpoint (None: base model)
    job_id: Id | None = None  # the job whose result these metrics are
    eval_seconds: float | None = None  # the worker's load + generate + grade time for that result


class BestResult(BaseModel):
    metric: str
    mode: Literal["max", "min"]
    row: ScoreRow


class CompareResult(BaseModel):
    a: ScoreRow
    b: ScoreRow
    delta: StoredMetrics  # b - a for every metric present in both


class SamplePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[Sample]


# --- per-question analysis -----------------------------------------------------------------------


class QuestionFlip(BaseModel):
    """One question whose verdict differs between checkpoints A and B (first generation of each)."""

    question_id: str
    a: Sample
    b: Sample


class SampleFlips(BaseModel):
    task: str
    a_checkpoint_id: int
    b_checkpoint_id: int
    a_step: int
    b_step: int
    common: int  # questions evaluated at both checkpoints
    learned: list[QuestionFlip]  # wrong at A, right at B
    forgotten: list[QuestionFlip]  # right at A, wrong at B


class QuestionVerdict(BaseModel):
    """A question at one checkpoint (its first generation)."""

    checkpoint_id: int
    step: int
    job_id: int
    sample: Sample


class ExportRow(Sample):
    """A sample with where it came from, for `duet export`."""

    task: str
    job_id: int
    checkpoint_id: int
    step: int


class ExportPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[ExportRow]
