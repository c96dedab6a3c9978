"""Per-question reads across a run: the tasks (suite entries) it was evaluated on, one question's
verdict at every checkpoint, and every sample with its checkpoint for exports."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from eval_service.api.crud.flips import latest_results, question_key
from eval_service.api.crud.runs import get_run
from eval_service.api.crud.scores import resolve_task
from eval_service.api.errors import NotFound
from eval_service.api.models import EvalResult, SampleRow
from shared import schemas

_SAMPLE_FIELDS = frozenset(schemas.Sample.model_fields)


def run_tasks(session: Session, run_ref: str) -> list[str]:
    """The tasks (suite entry names) a run has results for; its primary one first."""
    run = get_run(session, run_ref)
    tasks = sorted(session.exec(select(EvalResult.task).where(EvalResult.run_id == run.id).distinct()))
    head = run.wandb_primary_task or run.primary_task
    return sorted(tasks, key=lambda t: t != head)


def question_history(
    session: Session, run_ref: str, question_id: str, task: str | None
) -> list[schemas.QuestionVerdict]:
    """The question's first generation at every evaluated checkpoint of the run, by step."""
    run = get_run(session, run_ref)
    resolved = resolve_task(session, run, task)
    if resolved is None:
        raise NotFound(f"run {run.name!r} has no eval results yet")
    results = sorted(latest_results(session, run.id, resolved).values(), key=lambda r: r.step)
    out = []
    for r in results:
        rows = session.exec(
            select(SampleRow)
            .where(SampleRow.job_id == r.job_id, SampleRow.sample == 0)
            .order_by(SampleRow.id)
        )
        row = next((x for x in rows if question_key(x.question_id, x.index) == question_id), None)
        if row is not None:
            sample = schemas.Sample.model_validate(row.model_dump(include=_SAMPLE_FIELDS))
            out.append(
                schemas.QuestionVerdict(
                    checkpoint_id=r.checkpoint_id, step=r.step, job_id=r.job_id, sample=sample
                )
            )
    if not out:
        raise NotFound(f"run {run.name!r} task {resolved!r} has no question {question_id!r}")
    return out


def export_samples(
    session: Session, run_ref: str, task: str | None, offset: int, limit: int
) -> schemas.ExportPage:
    """Every sample of the run's newest result per checkpoint (of `task`, or of every task), in
    (task, step, question, generation) order."""
    run = get_run(session, run_ref)
    tasks = [task] if task is not None else run_tasks(session, run_ref)
    if task is not None:
        resolve_task(session, run, task)  # 422 naming the tasks it has
    jobs: dict[int, tuple[str, EvalResult]] = {}
    for t in tasks:
        for r in latest_results(session, run.id, t).values():
            jobs[r.job_id] = (t, r)
    if not jobs:
        return schemas.ExportPage(total=0, offset=offset, limit=limit, items=[])
    where = col(SampleRow.job_id).in_(list(jobs))
    total = session.exec(select(func.count()).select_from(SampleRow).where(where)).one()
    order = {job_id: (tasks.index(t), r.step) for job_id, (t, r) in jobs.items()}
    # Ordered in Python: the (task, step) order is not a column; pages are taken from that order.
    ids = session.exec(
        select(SampleRow.id, SampleRow.job_id, SampleRow.index, SampleRow.sample).where(where)
    ).all()
    ids = sorted(ids, key=lambda x: (*order[x[1]], x[2], x[3], x[0]))[offset : offset + limit]
    rows = {
        r.id: r for r in session.exec(select(SampleRow).where(col(SampleRow.id).in_([x[0] for x in ids])))
    }
    items = []
    for sid, job_id, _, _ in ids:
        t, r = jobs[job_id]
        base = rows[sid].model_dump(include=_SAMPLE_FIELDS)
        items.append(
            schemas.ExportRow(**base, task=t, job_id=job_id, checkpoint_id=r.checkpoint_id, step=r.step)
        )
    return schemas.ExportPage(total=total, offset=offset, limit=limit, items=items)
