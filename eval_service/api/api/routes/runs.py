"""Runs, train metrics and checkpoints."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from eval_service.api import crud
from eval_service.api.api.deps import get_db, get_settings, require_reader, require_writer
from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from shared import schemas as S

router = APIRouter(prefix="/v1", tags=["runs"])


@router.post("/runs", response_model=S.RunRead, dependencies=[Depends(require_writer)])
def create_run(body: S.RunCreate, db: Database = Depends(get_db)) -> S.RunRead:
    with db.write() as s:
        return crud.run_read(crud.create_run(s, body))


@router.get("/runs", response_model=list[S.RunRead], dependencies=[Depends(require_reader)])
def list_runs(db: Database = Depends(get_db)) -> list[S.RunRead]:
    with db.read() as s:
        return [crud.run_read(r) for r in crud.list_runs(s)]


@router.get("/runs/{run}", response_model=S.RunRead, dependencies=[Depends(require_reader)])
def get_run(run: str, db: Database = Depends(get_db)) -> S.RunRead:
    with db.read() as s:
        return crud.run_read(crud.get_run(s, run))


@router.get(
    "/runs/{run}/train-metrics", response_model=list[S.TrainMetricRow], dependencies=[Depends(require_reader)]
)
def train_metrics(run: str, key: str | None = None, db: Database = Depends(get_db)) -> list[S.TrainMetricRow]:
    with db.read() as s:
        return crud.list_train_metrics(s, run, key)


@router.post("/train-metrics", response_model=S.IngestResult, dependencies=[Depends(require_writer)])
def ingest(body: S.TrainMetricsBatch, request: Request, db: Database = Depends(get_db)) -> S.IngestResult:
    with db.write() as s:
        inserted, dups = crud.ingest_train_metrics(s, body)
    m = request.app.state.metrics
    m.train_rows.inc(inserted)
    m.duplicates.inc(dups)
    if inserted:
        request.app.state.sink.notify()
    return S.IngestResult(inserted=inserted, duplicates=dups)


@router.post("/checkpoints", response_model=S.CheckpointRead, dependencies=[Depends(require_writer)])
def register_checkpoint(
    body: S.CheckpointCreate,
    db: Database = Depends(get_db),
    settings: ServerSettings = Depends(get_settings),
) -> S.CheckpointRead:
    with db.write() as s:
        return crud.checkpoint_read(crud.register_checkpoint(s, settings, body))


@router.get(
    "/runs/{run}/checkpoints", response_model=list[S.CheckpointRead], dependencies=[Depends(require_reader)]
)
def list_checkpoints(run: str, db: Database = Depends(get_db)) -> list[S.CheckpointRead]:
    with db.read() as s:
        return [crud.checkpoint_read(c) for c in crud.list_checkpoints(s, run)]
