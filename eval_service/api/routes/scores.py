"""Score queries: per-checkpoint metrics of a run, the best checkpoint, two checkpoints side by side."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends

from eval_service.api.core.db import Database
from eval_service.api.crud import scores as score_queries
from eval_service.api.deps import get_db, require_reader
from shared import schemas

router = APIRouter(prefix="/v1", tags=["scores"], dependencies=[Depends(require_reader)])


@router.get("/runs/{run}/scores", response_model=list[schemas.ScoreRow])
def scores(run: str, task: str | None = None, db: Database = Depends(get_db)) -> list[schemas.ScoreRow]:
    with db.read() as session:
        return score_queries.scores(session, run, task)


@router.get("/runs/{run}/best", response_model=schemas.BestResult)
def best(
    run: str,
    metric: str = "eval/accuracy",
    mode: Literal["max", "min"] = "max",
    task: str | None = None,
    db: Database = Depends(get_db),
) -> schemas.BestResult:
    with db.read() as session:
        return score_queries.best(session, run, metric, mode, task)


@router.get("/compare", response_model=schemas.CompareResult)
def compare(a: int, b: int, task: str | None = None, db: Database = Depends(get_db)) -> schemas.CompareResult:
    with db.read() as session:
        return score_queries.compare(session, a, b, task)
