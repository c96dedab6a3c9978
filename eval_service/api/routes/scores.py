"""Score queries: per-checkpoint metrics of a run, the best checkpoint, two checkpoints side by side."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Response

from eval_service.api.core.db import Database
from eval_service.api.crud import scores as score_queries
from eval_service.api.deps import get_db, require_reader
from eval_service.api.responses import CheckpointIdQuery, errors
from shared import schemas

router = APIRouter(
    prefix="/v1", tags=["scores"], dependencies=[Depends(require_reader)], responses=errors(401, 404, 422)
)


# A page of scores: large runs (10,000 checkpoints) are read page by page; the client pages.
SCORES_PAGE_DEFAULT = 1000
SCORES_PAGE_MAX = 10_000


@router.get("/runs/{run}/scores", response_model=list[schemas.ScoreRow])
def scores(
    run: str,
    response: Response,
    task: str | None = None,
    limit: int = Query(SCORES_PAGE_DEFAULT, ge=1, le=SCORES_PAGE_MAX, description="Checkpoints per page."),
    offset: int = Query(0, ge=0, description="Checkpoints to skip, in step order."),
    db: Database = Depends(get_db),
) -> list[schemas.ScoreRow]:
    """One page of the run's checkpoints in step order; the `X-Total-Count` header says how many
    there are in all."""
    with db.read() as session:
        rows, total = score_queries.scores(session, run, task, offset=offset, limit=limit)
    response.headers["X-Total-Count"] = str(total)
    return rows


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
def compare(
    a: CheckpointIdQuery, b: CheckpointIdQuery, task: str | None = None, db: Database = Depends(get_db)
) -> schemas.CompareResult:
    with db.read() as session:
        return score_queries.compare(session, a, b, task)
