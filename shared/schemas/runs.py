"""Runs, train metrics and checkpoints on the wire."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.fields import (
    Finite,
    Id,
    JsonObject,
    Name,
    PathText,
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
