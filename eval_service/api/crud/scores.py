"""Score queries: per-checkpoint metrics of a run, the best checkpoint, two checkpoints side by
side. A checkpoint's score for a task is its newest result for that task."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from sqlmodel import Session, col, select

from eval_service.api.crud.runs import get_run
from eval_service.api.errors import Invalid, NotFound
from eval_service.api.models import Checkpoint, EvalResult, Run
from shared import schemas


class _Latest(NamedTuple):
    checkpoint_id: int
    step: int
    path: str
    kind: str
    metrics: dict[str, float]  # bare names, as stored


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


def _latest_results(
    session: Session, run_id: int, task: str, ckpt_ids: list[int] | None = None
) -> list[_Latest]:
    """The newest result per checkpoint, by step."""
    q = (
        select(
            EvalResult.checkpoint_id, Checkpoint.step, Checkpoint.path, Checkpoint.kind, EvalResult.metrics
        )
        .join(Checkpoint, col(Checkpoint.id) == EvalResult.checkpoint_id)
        .where(EvalResult.run_id == run_id, EvalResult.task == task)
        .order_by(col(EvalResult.id))
    )
    if ckpt_ids is not None:
        q = q.where(col(EvalResult.checkpoint_id).in_(ckpt_ids))
    latest = {row[0]: _Latest(*row) for row in session.exec(q)}
    return sorted(latest.values(), key=lambda r: (r.step, r.checkpoint_id))


def _score_row(latest: _Latest) -> schemas.ScoreRow:
    return schemas.ScoreRow(
        checkpoint_id=latest.checkpoint_id,
        step=latest.step,
        path=latest.path,
        kind=latest.kind,
        metrics={f"eval/{k}": v for k, v in latest.metrics.items()},
    )


def _score_rows(
    session: Session, run_id: int, task: str, ckpt_ids: list[int] | None = None
) -> list[schemas.ScoreRow]:
    return [_score_row(r) for r in _latest_results(session, run_id, task, ckpt_ids)]


def scores(session: Session, run_ref: str, task: str | None) -> list[schemas.ScoreRow]:
    run = get_run(session, run_ref)
    resolved = resolve_task(session, run, task)
    return [] if resolved is None else _score_rows(session, run.id, resolved)


def best(
    session: Session, run_ref: str, metric: str, mode: Literal["max", "min"], task: str | None
) -> schemas.BestResult:
    run = get_run(session, run_ref)
    resolved = resolve_task(session, run, task)
    if resolved is None:
        raise NotFound(f"run {run.name!r} has no eval results yet")
    key = metric if metric.startswith("eval/") else f"eval/{metric}"
    name = key.removeprefix("eval/")
    results = _latest_results(session, run.id, resolved)
    rows = [r for r in results if name in r.metrics and not math.isnan(r.metrics[name])]
    if not rows:
        known = sorted({f"eval/{k}" for r in results for k in r.metrics})
        raise Invalid(
            "metric",
            f"unknown metric {key!r} for run {run.name!r} task {resolved!r}; known: {known}",
            "query",
        )
    sign = 1 if mode == "max" else -1
    # ties go to the earliest checkpoint
    row = max(rows, key=lambda r: (sign * r.metrics[name], -r.step))
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
