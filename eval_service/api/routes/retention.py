"""Retention: the trainer asks which checkpoints it may delete and reports each deletion; users pin
checkpoints so retention never takes them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from eval_service.api.core.db import Database
from eval_service.api.crud import retention
from eval_service.api.deps import get_db, require_reader, require_writer
from eval_service.api.responses import errors
from shared import schemas
from shared.fields import INT64_MAX
from shared.retention import RetentionGrant, RetentionGrantRequest

router = APIRouter(prefix="/v1", tags=["retention"], responses=errors(401, 404, 422))

CheckpointId = Annotated[int, Path(ge=0, le=INT64_MAX)]


@router.post(
    "/runs/{run}/retention/grant",
    response_model=RetentionGrant,
    dependencies=[Depends(require_writer)],
    responses=errors(413),
)
def grant(run: str, body: RetentionGrantRequest, db: Database = Depends(get_db)) -> RetentionGrant:
    """Grant the deletion of every candidate nothing needs any more (each becomes `deleting`, and
    enqueue refuses it from then on); the others come back with the reason they must stay."""
    with db.write() as session:
        return retention.grant(session, run, body)


@router.post(
    "/checkpoints/{checkpoint_id}/deleted",
    response_model=schemas.CheckpointRead,
    dependencies=[Depends(require_writer)],
    responses=errors(409),
)
def deleted(checkpoint_id: CheckpointId, db: Database = Depends(get_db)) -> schemas.CheckpointRead:
    """The trainer removed a granted checkpoint's files (idempotent)."""
    with db.write() as session:
        return retention.checkpoint_read(retention.mark_deleted(session, checkpoint_id))


@router.post(
    "/checkpoints/{checkpoint_id}/pin",
    response_model=schemas.CheckpointRead,
    dependencies=[Depends(require_writer)],
    responses=errors(409),
)
def pin(checkpoint_id: CheckpointId, db: Database = Depends(get_db)) -> schemas.CheckpointRead:
    """Retention never deletes a pinned checkpoint."""
    with db.write() as session:
        return retention.checkpoint_read(retention.set_pinned(session, checkpoint_id, True))


@router.post(
    "/checkpoints/{checkpoint_id}/unpin",
    response_model=schemas.CheckpointRead,
    dependencies=[Depends(require_writer)],
)
def unpin(checkpoint_id: CheckpointId, db: Database = Depends(get_db)) -> schemas.CheckpointRead:
    with db.write() as session:
        return retention.checkpoint_read(retention.set_pinned(session, checkpoint_id, False))


@router.get(
    "/checkpoints/{checkpoint_id}",
    response_model=schemas.CheckpointRead,
    dependencies=[Depends(require_reader)],
)
def get_checkpoint(checkpoint_id: CheckpointId, db: Database = Depends(get_db)) -> schemas.CheckpointRead:
    with db.read() as session:
        return retention.checkpoint_read(retention.get_checkpoint(session, checkpoint_id))
