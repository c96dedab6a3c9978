"""Runs, train metrics and checkpoints."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from eval_service.api.crud import runs
from eval_service.api.deps import get_db, get_settings, require_reader, require_writer
from eval_service.api.models import Checkpoint, Run
from eval_service.api.responses import errors
from shared import schemas
from shared.fields import INT64_MAX

router = APIRouter(prefix="/v1", tags=["runs"], responses=errors(401, 422))


def _run_read(run: Run) -> schemas.RunRead:
    return schemas.RunRead.model_validate(run, from_attributes=True)


def _checkpoint_read(ckpt: Checkpoint) -> schemas.CheckpointRead:
    return schemas.CheckpointRead.model_validate(ckpt, from_attributes=True)


@router.post(
    "/runs", response_model=schemas.RunRead, dependencies=[Depends(require_writer)], responses=errors(413)
)
def create_run(body: schemas.RunCreate, db: Database = Depends(get_db)) -> schemas.RunRead:
    with db.write() as session:
        return _run_read(runs.create_run(session, body))


@router.get("/runs", response_model=list[schemas.RunSummary], dependencies=[Depends(require_reader)])
def list_runs(
    offset: int = Query(0, ge=0, le=INT64_MAX),
    limit: int = Query(1000, ge=1, le=10_000),
    db: Database = Depends(get_db),
) -> list[schemas.RunSummary]:
    """Runs by id, without their configs (a config can be large: `GET /v1/runs/{run}` has it)."""
    with db.read() as session:
        return [
            schemas.RunSummary.model_validate(r, from_attributes=True)
            for r in runs.list_runs(session, offset, limit)
        ]


@router.get(
    "/runs/{run}",
    response_model=schemas.RunRead,
    dependencies=[Depends(require_reader)],
    responses=errors(404),
)
def get_run(run: str, db: Database = Depends(get_db)) -> schemas.RunRead:
    with db.read() as session:
        return _run_read(runs.get_run(session, run))


@router.get(
    "/runs/{run}/train-metrics",
    response_model=list[schemas.TrainMetricRow],
    dependencies=[Depends(require_reader)],
    responses=errors(404),
)
def train_metrics(
    run: str,
    key: str | None = None,
    since_step: int | None = Query(None, ge=0, description="only rows after this step (polling)"),
    db: Database = Depends(get_db),
) -> list[schemas.TrainMetricRow]:
    with db.read() as session:
        return [
            schemas.TrainMetricRow.model_validate(m, from_attributes=True)
            for m in runs.list_train_metrics(session, run, key, since_step)
        ]


@router.post(
    "/train-metrics",
    response_model=schemas.IngestResult,
    dependencies=[Depends(require_writer)],
    responses=errors(413),
)
def ingest(
    body: schemas.TrainMetricsBatch, request: Request, db: Database = Depends(get_db)
) -> schemas.IngestResult:
    with db.write() as session:
        inserted, dups = runs.ingest_train_metrics(session, body)
    metrics = request.app.state.metrics
    metrics.train_rows.inc(inserted)
    metrics.duplicates.inc(dups)
    if inserted:
        request.app.state.sink.notify()
    return schemas.IngestResult(inserted=inserted, duplicates=dups)


@router.post(
    "/checkpoints",
    response_model=schemas.CheckpointRead,
    dependencies=[Depends(require_writer)],
    responses=errors(409, 413),
)
def register_checkpoint(
    body: schemas.CheckpointCreate,
    db: Database = Depends(get_db),
    settings: ServerSettings = Depends(get_settings),
) -> schemas.CheckpointRead:
    with db.write() as session:
        return _checkpoint_read(runs.register_checkpoint(session, settings, body))


@router.get(
    "/runs/{run}/checkpoints",
    response_model=list[schemas.CheckpointRead],
    dependencies=[Depends(require_reader)],
    responses=errors(404),
)
def list_checkpoints(run: str, db: Database = Depends(get_db)) -> list[schemas.CheckpointRead]:
    with db.read() as session:
        return [_checkpoint_read(c) for c in runs.list_checkpoints(session, run)]
