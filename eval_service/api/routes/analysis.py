"""Per-question analysis: flipped questions between two checkpoints, one question across a run,
the tasks of a run, and every sample for exports."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from eval_service.api.core.db import Database
from eval_service.api.crud import analysis, flips
from eval_service.api.deps import get_db, require_reader
from eval_service.api.responses import CheckpointIdQuery
from shared import schemas

router = APIRouter(prefix="/v1", tags=["analysis"], dependencies=[Depends(require_reader)])


@router.get("/compare/samples", response_model=schemas.SampleFlips)
def compare_samples(
    a: CheckpointIdQuery, b: CheckpointIdQuery, task: str | None = None, db: Database = Depends(get_db)
) -> schemas.SampleFlips:
    with db.read() as session:
        return flips.sample_flips(session, a, b, task)


@router.get("/runs/{run}/tasks", response_model=list[str])
def run_tasks(run: str, db: Database = Depends(get_db)) -> list[str]:
    with db.read() as session:
        return analysis.run_tasks(session, run)


@router.get("/runs/{run}/questions/{question_id:path}", response_model=list[schemas.QuestionVerdict])
def question(
    run: str, question_id: str, task: str | None = None, db: Database = Depends(get_db)
) -> list[schemas.QuestionVerdict]:
    with db.read() as session:
        return analysis.question_history(session, run, question_id, task)


@router.get("/runs/{run}/samples", response_model=schemas.ExportPage)
def run_samples(
    run: str,
    task: str | None = None,
    offset: int = Query(0, ge=0, le=2**63 - 1),
    limit: int = Query(1000, ge=1, le=10_000),
    db: Database = Depends(get_db),
) -> schemas.ExportPage:
    with db.read() as session:
        return analysis.export_samples(session, run, task, offset, limit)
