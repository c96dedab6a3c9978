"""What the ledger reads back: results, scores, comparisons, samples and exports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from shared.fields import (
    Id,
    Name,
    StoredMetrics,
)
from shared.schemas.jobs import LoadMode, Sample
from shared.schemas.runs import Algorithm, CheckpointKind, CheckpointState

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
