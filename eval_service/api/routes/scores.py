"""Score queries: per-checkpoint metrics of a run, the best checkpoint, two checkpoints side by side."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import TypeAdapter

from eval_service.api.core.db import Database
from eval_service.api.crud import scores as score_queries
from eval_service.api.deps import get_db, require_reader
from eval_service.api.responses import CheckpointIdQuery, errors
from shared import schemas

router = APIRouter(
    prefix="/v1", tags=["scores"], dependencies=[Depends(require_reader)], responses=errors(401, 404, 422)
)


# A page of scores: large runs (10,000 checkpoints) are read page by page; the client pages.
SCORES_PAGE_DEFAULT = 100
SCORES_PAGE_MAX = 1000
_SCORE_ROWS = TypeAdapter(list[schemas.ScoreRow])


@router.get("/runs/{run}/scores", response_model=list[schemas.ScoreRow])
def scores(
    run: str,
    task: str | None = None,
    limit: int = Query(SCORES_PAGE_DEFAULT, ge=1, le=SCORES_PAGE_MAX, description="Checkpoints per page."),
    after_step: int | None = Query(
        None,
        ge=0,
        le=2**63 - 1,
        description="Only checkpoints after this step (the cursor: a page's last step).",
    ),
    offset: int = Query(0, ge=0, le=2**63 - 1, description="Checkpoints to skip, in step order."),
    db: Database = Depends(get_db),
) -> Response:
    """One page of the run's checkpoints in step order; the `X-Total-Count` header says how many
    there are in all. Page with `after_step` (cheap at any depth) or `offset`."""
    with db.read() as session:
        rows, total = score_queries.scores(
            session, run, task, after_step=after_step, offset=offset, limit=limit
        )
    # Serialised once here: the rows are already validated ScoreRows.
    return Response(
        _SCORE_ROWS.dump_json(rows), media_type="application/json", headers={"X-Total-Count": str(total)}
    )


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
