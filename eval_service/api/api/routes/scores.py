"""Score queries: per-checkpoint metrics of a run, the best checkpoint, two checkpoints side by side."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends

from eval_service.api import crud
from eval_service.api.api.deps import get_db, require_reader
from eval_service.api.core.db import Database
from shared import schemas as S

router = APIRouter(prefix="/v1", tags=["scores"], dependencies=[Depends(require_reader)])


@router.get("/runs/{run}/scores", response_model=list[S.ScoreRow])
def scores(run: str, task: str | None = None, db: Database = Depends(get_db)) -> list[S.ScoreRow]:
    with db.read() as s:
        return crud.scores(s, run, task)


@router.get("/runs/{run}/best", response_model=S.BestResult)
def best(
    run: str,
    metric: str = "eval/accuracy",
    mode: Literal["max", "min"] = "max",
    task: str | None = None,
    db: Database = Depends(get_db),
) -> S.BestResult:
    with db.read() as s:
        return crud.best(s, run, metric, mode, task)


@router.get("/compare", response_model=S.CompareResult)
def compare(a: int, b: int, task: str | None = None, db: Database = Depends(get_db)) -> S.CompareResult:
    with db.read() as s:
        return crud.compare(s, a, b, task)
