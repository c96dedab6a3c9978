"""Score queries: per-checkpoint metrics of a run, the best checkpoint, two checkpoints side by
side. A checkpoint's score for a task is its newest result for that task."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from sqlalchemy import Select, delete, func
from sqlmodel import Session, col, select

from eval_service.api.crud.runs import get_run
from eval_service.api.errors import Invalid, NotFound
from eval_service.api.models import Checkpoint, EvalMetric, EvalResult, Run
from shared import schemas


class _Latest(NamedTuple):
    checkpoint_id: int
    step: int
    path: str
    kind: str
    metrics: dict[str, float]  # bare names, as stored
    load_mode: str | None
    grader_version: str
    checkpoint_state: str  # deleted by retention: results stay, files are gone
    algorithm: str | None  # the training stage that wrote the checkpoint


def resolve_task(session: Session, run: Run, task: str | None) -> str | None:
    """The task a score query is about: the given one, the run's only one, or its primary task."""
    tasks = sorted(session.exec(select(EvalResult.task).where(EvalResult.run_id == run.id).distinct()))
    if task is not None:
        if task not in tasks:
            raise Invalid("task", f"run {run.name!r} has no results for task {task!r}; has {tasks}", "query")
        return task
    if len(tasks) <= 1:
        return tasks[0] if tasks else None
    if run.primary_task in tasks:
        return run.primary_task
    raise Invalid("task", f"run {run.name!r} has results for several tasks {tasks}: give one", "query")


def _latest_ids(run_id: int, task: str) -> Select:
    """Ids of the newest result per checkpoint (served by the ix_results_scores index)."""
    return (
        select(func.max(EvalResult.id))
        .where(EvalResult.run_id == run_id, EvalResult.task == task)
        .group_by(col(EvalResult.checkpoint_id))
    )


def _latest_query(run_id: int, task: str) -> Select:
    return (
        select(
            EvalResult.checkpoint_id,
            Checkpoint.step,
            Checkpoint.path,
            Checkpoint.kind,
            EvalResult.metrics,
            EvalResult.load_mode,
            EvalResult.grader_version,
            Checkpoint.state,
            Checkpoint.algorithm,
        )
        .join(Checkpoint, col(Checkpoint.id) == EvalResult.checkpoint_id)
        .where(col(EvalResult.id).in_(_latest_ids(run_id, task)))
        .order_by(col(Checkpoint.step), col(EvalResult.checkpoint_id))
    )


def _latest_results(
    session: Session,
    run_id: int,
    task: str,
    ckpt_ids: list[int] | None = None,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> list[_Latest]:
    """The newest result per checkpoint, by step; only the asked page is read and decoded."""
    q = _latest_query(run_id, task)
    if ckpt_ids is not None:
        q = q.where(col(EvalResult.checkpoint_id).in_(ckpt_ids))
    q = q.offset(offset).limit(limit)
    return [_Latest(*row) for row in session.exec(q)]


def _score_row(latest: _Latest) -> schemas.ScoreRow:
    return schemas.ScoreRow(
        checkpoint_id=latest.checkpoint_id,
        step=latest.step,
        path=latest.path,
        kind=latest.kind,
        metrics={f"eval/{k}": v for k, v in latest.metrics.items()},
        load_mode=latest.load_mode,
        grader_version=latest.grader_version,
        checkpoint_state=latest.checkpoint_state,
        algorithm=latest.algorithm,
    )


def _score_rows(
    session: Session, run_id: int, task: str, ckpt_ids: list[int] | None = None
) -> list[schemas.ScoreRow]:
    return [_score_row(r) for r in _latest_results(session, run_id, task, ckpt_ids)]


def scores(
    session: Session, run_ref: str, task: str | None, *, offset: int = 0, limit: int | None = None
) -> tuple[list[schemas.ScoreRow], int]:
    """One page of a run's checkpoints with their scores, in step order, and how many there are."""
    run = get_run(session, run_ref)
    resolved = resolve_task(session, run, task)
    if resolved is None:
        return [], 0
    total = session.exec(select(func.count()).select_from(_latest_ids(run.id, resolved).subquery())).one()
    rows = _latest_results(session, run.id, resolved, offset=offset, limit=limit)
    return [_score_row(r) for r in rows], total


def _metric_value(value: object) -> float | None:
    """What eval_metrics stores: a finite number, else NULL (NaN, inf and non-numbers never win)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def index_metrics(session: Session, result: EvalResult) -> None:
    """Bring eval_metrics up to date with `result` (just stored or regraded) and with any other
    result changed in this transaction (the neighbour whose flip metrics it moved)."""
    changed = {id(o): o for o in (result, *session.new, *session.dirty) if isinstance(o, EvalResult)}
    session.flush()  # ids, and the newest-result check sees them
    for r in changed.values():
        _index_result(session, r)


def _index_result(session: Session, result: EvalResult) -> None:
    """eval_metrics holds `result`'s metrics if it is its checkpoint's newest for its task."""
    newest = session.exec(
        select(func.max(EvalResult.id)).where(
            EvalResult.checkpoint_id == result.checkpoint_id, EvalResult.task == result.task
        )
    ).one()
    if newest != result.id:
        return  # an older result regraded: the scores show a newer one
    table = EvalMetric.__table__  # type: ignore[attr-defined]
    session.execute(
        delete(table).where(table.c.checkpoint_id == result.checkpoint_id, table.c.task == result.task)
    )
    rows = [
        {
            "result_id": result.id,
            "checkpoint_id": result.checkpoint_id,
            "run_id": result.run_id,
            "task": result.task,
            "step": result.step,
            "key": k,
            "value": _metric_value(v),
        }
        for k, v in result.metrics.items()
    ]
    if rows:
        session.execute(table.insert(), rows)


def best(
    session: Session, run_ref: str, metric: str, mode: Literal["max", "min"], task: str | None
) -> schemas.BestResult:
    """The checkpoint with the best value of `metric`; ties go to the earliest. Two index lookups
    in eval_metrics (the best value, then its earliest step) whatever the size of the run."""
    run = get_run(session, run_ref)
    resolved = resolve_task(session, run, task)
    if resolved is None:
        raise NotFound(f"run {run.name!r} has no eval results yet")
    key = metric if metric.startswith("eval/") else f"eval/{metric}"
    name = key.removeprefix("eval/")
    m = EvalMetric
    where = (m.run_id == run.id, m.task == resolved, m.key == name, col(m.value).is_not(None))
    value_order = col(m.value).desc() if mode == "max" else col(m.value).asc()
    top = session.exec(select(m.value).where(*where).order_by(value_order).limit(1)).first()
    if top is None:
        known = session.exec(
            select(m.key).where(m.run_id == run.id, m.task == resolved, col(m.value).is_not(None)).distinct()
        )
        raise Invalid(
            "metric",
            f"unknown metric {key!r} for run {run.name!r} task {resolved!r}; "
            f"known: {sorted(f'eval/{k}' for k in known)}",
            "query",
        )
    ckpt_id = session.exec(
        select(m.checkpoint_id)
        .where(*where, m.value == top)
        .order_by(col(m.step), col(m.checkpoint_id))
        .limit(1)
    ).one()
    (row,) = _latest_results(session, run.id, resolved, [ckpt_id])
    return schemas.BestResult(metric=key, mode=mode, row=_score_row(row))


def compare(session: Session, a: int, b: int, task: str | None) -> schemas.CompareResult:
    ca, cb = session.get(Checkpoint, a), session.get(Checkpoint, b)
    for name, ckpt, cid in (("a", ca, a), ("b", cb, b)):
        if ckpt is None:
            raise Invalid(name, f"no checkpoint with id {cid}", "query")
    run = session.get(Run, ca.run_id)
    resolved = resolve_task(session, run, task)
    if resolved is None:
        raise NotFound(f"run {run.name!r} has no eval results yet")
    rows = {r.checkpoint_id: r for r in _score_rows(session, ca.run_id, resolved, [a])}
    rows.update({r.checkpoint_id: r for r in _score_rows(session, cb.run_id, resolved, [b])})
    for name, cid in (("a", a), ("b", b)):
        if cid not in rows:
            raise NotFound(f"checkpoint {cid} ({name}) has no result for task {resolved!r}")
    ra, rb = rows[a], rows[b]
    delta = {k: rb.metrics[k] - ra.metrics[k] for k in ra.metrics if k in rb.metrics}
    return schemas.CompareResult(a=ra, b=rb, delta=delta)
