"""Score queries: per-checkpoint metrics of a run, the best checkpoint, two checkpoints side by
side. A checkpoint's score for a task is its newest result for that task."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from sqlalchemy import Select, delete, func, text
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
    job_id: int  # the job that produced the result
    info: dict[str, object]  # the worker's timings and engine events


# The worker's timing parts of one evaluation (engine load, generation, grading; or the harness run).
EVAL_TIME_KEYS = ("load_total_s", "gen_s", "grade_s", "harness_eval_s")


def eval_seconds(info: dict[str, object]) -> float | None:
    """Wall time of one evaluation from its result info; None when the worker reported no timing."""
    parts = [
        v for k in EVAL_TIME_KEYS if isinstance(v := info.get(k), int | float) and not isinstance(v, bool)
    ]
    return round(sum(parts), 4) if parts else None


def run_task_names(session: Session, run_id: int) -> list[str]:
    """The tasks the run has results for, sorted: a loose index scan of ix_results_scores (one
    lookup per task), not a pass over every result of the run."""
    q = text(
        "WITH RECURSIVE t(task) AS ("
        " SELECT (SELECT min(task) FROM eval_results WHERE run_id = :run)"
        " UNION ALL"
        " SELECT (SELECT min(task) FROM eval_results WHERE run_id = :run AND task > t.task)"
        " FROM t WHERE t.task IS NOT NULL"
        ") SELECT task FROM t WHERE task IS NOT NULL"
    )
    return [t for (t,) in session.execute(q, {"run": run_id})]


def _has_results(session: Session, run_id: int, task: str) -> bool:
    q = select(EvalResult.id).where(EvalResult.run_id == run_id, EvalResult.task == task).limit(1)
    return session.exec(q).first() is not None


def resolve_task(session: Session, run: Run, task: str | None) -> str | None:
    """The task a score query is about: the given one, the run's only one, or its primary task."""
    if task is not None:
        if not _has_results(session, run.id, task):
            tasks = run_task_names(session, run.id)
            raise Invalid("task", f"run {run.name!r} has no results for task {task!r}; has {tasks}", "query")
        return task
    if run.primary_task is not None and _has_results(session, run.id, run.primary_task):
        return run.primary_task  # the only task, or the primary one among several
    tasks = run_task_names(session, run.id)
    if len(tasks) <= 1:
        return tasks[0] if tasks else None
    raise Invalid("task", f"run {run.name!r} has results for several tasks {tasks}: give one", "query")


def _latest_query(run_id: int, task: str) -> Select:
    """The newest result of `task` per checkpoint, walking the run's checkpoints in step order
    (uq_checkpoint_run_step) with one ix_results_scores lookup each: a page reads only its rows."""
    newest = (
        select(func.max(EvalResult.id))
        .where(
            EvalResult.run_id == run_id, EvalResult.task == task, EvalResult.checkpoint_id == Checkpoint.id
        )
        .correlate(Checkpoint)
        .scalar_subquery()
    )
    return (
        select(
            Checkpoint.id,
            Checkpoint.step,
            Checkpoint.path,
            Checkpoint.kind,
            EvalResult.metrics,
            EvalResult.load_mode,
            EvalResult.grader_version,
            Checkpoint.state,
            Checkpoint.algorithm,
            EvalResult.job_id,
            EvalResult.info,
        )
        .select_from(Checkpoint)
        .join(EvalResult, col(EvalResult.id) == newest)
        .where(Checkpoint.run_id == run_id)
        .order_by(col(Checkpoint.step))
    )


def _latest_results(
    session: Session,
    run_id: int,
    task: str,
    ckpt_ids: list[int] | None = None,
    *,
    after_step: int | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[_Latest]:
    """The newest result per checkpoint, by step; only the asked page is read and decoded."""
    q = _latest_query(run_id, task)
    if ckpt_ids is not None:
        q = q.where(col(Checkpoint.id).in_(ckpt_ids))
    if after_step is not None:
        q = q.where(Checkpoint.step > after_step)
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
        job_id=latest.job_id,
        eval_seconds=eval_seconds(latest.info or {}),
    )


def _score_rows(
    session: Session, run_id: int, task: str, ckpt_ids: list[int] | None = None
) -> list[schemas.ScoreRow]:
    return [_score_row(r) for r in _latest_results(session, run_id, task, ckpt_ids)]


def scores(
    session: Session,
    run_ref: str,
    task: str | None,
    *,
    after_step: int | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[schemas.ScoreRow], int]:
    """One page of a run's checkpoints with their scores, in step order (those after `after_step`,
    then `offset` skipped), and how many checkpoints have a score in all."""
    run = get_run(session, run_ref)
    resolved = resolve_task(session, run, task)
    if resolved is None:
        return [], 0
    total = session.exec(
        select(func.count(func.distinct(EvalResult.checkpoint_id))).where(
            EvalResult.run_id == run.id, EvalResult.task == resolved
        )
    ).one()
    rows = _latest_results(session, run.id, resolved, after_step=after_step, offset=offset, limit=limit)
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
