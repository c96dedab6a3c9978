"""The wire contract of retention: the trainer proposes checkpoints to delete, the ledger grants
(marking each `deleting`) or refuses them with the reason (eval_service.api.crud.retention)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.fields import Id, Name
from shared.schemas import CheckpointRead


class RetentionCandidate(BaseModel):
    """A checkpoint the trainer would delete, with the suite entries due for it (by cadence)."""

    checkpoint_id: Id
    due: list[Name] = Field(default_factory=list, max_length=1000)


class RetentionGrantRequest(BaseModel):
    candidates: list[RetentionCandidate] = Field(max_length=10_000)


class RetentionRefusal(BaseModel):
    checkpoint_id: int
    step: int
    reason: str  # why it must stay, e.g. "job 7 (math500) is queued"


class RetentionGrant(BaseModel):
    """What the ledger granted (now `deleting`: delete these, then report each deleted) and what not."""

    granted: list[CheckpointRead]
    refused: list[RetentionRefusal]
