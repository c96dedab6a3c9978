"""Questions that flipped between checkpoints: the per-checkpoint `flip_rate`, `learned` and
`forgotten` metrics (computed when a result is stored) and the side-by-side diff of two checkpoints.

A question's verdict at a checkpoint is the strict `correct` of its first generation (sample 0:
the greedy answer when temperature is 0). A question is known by its `question_id` (the task's
example id), or by its index in the eval set for samples from workers that sent none.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ScalarSelect, func
from sqlmodel import Session, col, select

from eval_service.api.crud import outbox
from eval_service.api.crud.scores import resolve_task
from eval_service.api.errors import Invalid, NotFound
from eval_service.api.models import Checkpoint, EvalResult, Run, SampleRow
from shared import schemas

FLIP_METRICS = ("flip_rate", "learned", "forgotten")  # the ledger computes these; workers never send them
_SAMPLE_FIELDS = frozenset(schemas.Sample.model_fields)


def question_key(question_id: str | None, index: int) -> str:
    return question_id if question_id is not None else str(index)


def first_generations(session: Session, job_id: int) -> dict[str, SampleRow]:
    """Question key -> the first generation of the job for it."""
    rows = session.exec(
        select(SampleRow).where(SampleRow.job_id == job_id, SampleRow.sample == 0).order_by(SampleRow.id)
    )
    return {question_key(r.question_id, r.index): r for r in rows}


def _verdicts(session: Session, job_id: int) -> dict[str, bool]:
    rows = session.exec(
        select(SampleRow.question_id, SampleRow.index, SampleRow.correct).where(
            SampleRow.job_id == job_id, SampleRow.sample == 0
        )
    )
    return {question_key(qid, index): bool(ok) for qid, index, ok in rows}


def flip_metrics(before: dict[str, bool], after: dict[str, bool]) -> dict[str, float]:
    """flip_rate (share of the common questions whose verdict changed), learned, forgotten;
    empty when the two share no question."""
    common = before.keys() & after.keys()
    if not common:
        return {}
    learned = sum(1 for q in common if after[q] and not before[q])
    forgotten = sum(1 for q in common if before[q] and not after[q])
    return {
        "flip_rate": (learned + forgotten) / len(common),
        "learned": float(learned),
        "forgotten": float(forgotten),
    }


def latest_results(session: Session, run_id: int, task: str) -> dict[int, EvalResult]:
    """Checkpoint id -> the newest result of `task` for it."""
    rows = session.exec(
        select(EvalResult)
        .where(EvalResult.run_id == run_id, EvalResult.task == task)
        .order_by(col(EvalResult.id))
    )
    return {r.checkpoint_id: r for r in rows}


def _with_flips(result: EvalResult, flips: dict[str, float]) -> dict[str, float]:
    metrics = {k: v for k, v in result.metrics.items() if k not in FLIP_METRICS}
    return {**metrics, **flips}


def newest_result_id(run_id: int, task: str, checkpoint_id: Any) -> ScalarSelect:
    """Id of the newest result of `task` for a checkpoint: one ix_results_scores lookup."""
    return (
        select(func.max(EvalResult.id))
        .where(
            EvalResult.run_id == run_id, EvalResult.task == task, EvalResult.checkpoint_id == checkpoint_id
        )
        .scalar_subquery()
    )


def _neighbour(session: Session, result: EvalResult, *, later: bool) -> EvalResult | None:
    """The newest result of the nearest evaluated checkpoint before (or after) `result`'s: the run's
    checkpoints are walked from its step (uq_checkpoint_run_step), one index lookup each, so a
    complete costs the same at 10 or 10,000 checkpoints."""
    newest = newest_result_id(result.run_id, result.task, Checkpoint.id).correlate(Checkpoint)
    step_order = col(Checkpoint.step).asc() if later else col(Checkpoint.step).desc()
    beyond = Checkpoint.step > result.step if later else Checkpoint.step < result.step
    rid = session.exec(
        select(newest)
        .select_from(Checkpoint)
        .where(Checkpoint.run_id == result.run_id, beyond, newest.is_not(None))
        .order_by(step_order)
        .limit(1)
    ).first()
    return session.get(EvalResult, rid) if rid is not None else None


def record_flips(session: Session, result: EvalResult) -> None:
    """Give `result` (samples already stored) its flip metrics against the previous evaluated
    checkpoint of its task, and recompute those of the next one, whose predecessor it now is
    (checkpoints are often evaluated out of step order: newest first, backfills). The next
    result's new values are queued for W&B too."""
    before = _neighbour(session, result, later=False)
    after = _neighbour(session, result, later=True)
    mine = _verdicts(session, result.job_id)
    flips = flip_metrics(_verdicts(session, before.job_id), mine) if before is not None else {}
    result.metrics = _with_flips(result, flips)
    session.add(result)
    if after is not None:
        next_flips = flip_metrics(mine, _verdicts(session, after.job_id))
        after.metrics = _with_flips(after, next_flips)
        session.add(after)
        if next_flips:
            outbox.queue_eval(session, session.get(Run, after.run_id), after.task, after.step, next_flips)


def _result_at(session: Session, ckpt_id: int, task: str, field: str) -> tuple[Checkpoint, EvalResult]:
    ckpt = session.get(Checkpoint, ckpt_id)
    if ckpt is None:
        raise Invalid(field, f"no checkpoint with id {ckpt_id}", "query")
    rid = session.exec(select(newest_result_id(ckpt.run_id, task, ckpt.id))).one()
    if rid is None:
        raise NotFound(f"checkpoint {ckpt_id} ({field}) has no result for task {task!r}")
    return ckpt, session.get(EvalResult, rid)


def _sample(row: SampleRow) -> schemas.Sample:
    return schemas.Sample.model_validate(row.model_dump(include=_SAMPLE_FIELDS))


def sample_flips(session: Session, a: int, b: int, task: str | None) -> schemas.SampleFlips:
    """The questions whose verdict differs between checkpoints `a` and `b` for `task`, with both
    first generations, ordered by question."""
    ca = session.get(Checkpoint, a)
    if ca is None:
        raise Invalid("a", f"no checkpoint with id {a}", "query")
    resolved = resolve_task(session, session.get(Run, ca.run_id), task)
    if resolved is None:
        raise NotFound(f"checkpoint {a}'s run has no eval results yet")
    ca, ra = _result_at(session, a, resolved, "a")
    cb, rb = _result_at(session, b, resolved, "b")
    sa, sb = first_generations(session, ra.job_id), first_generations(session, rb.job_id)
    common = sorted(sa.keys() & sb.keys(), key=lambda q: (sa[q].index, q))
    learned, forgotten = [], []
    for q in common:
        if sa[q].correct != sb[q].correct:
            flip = schemas.QuestionFlip(question_id=q, a=_sample(sa[q]), b=_sample(sb[q]))
            (learned if sb[q].correct else forgotten).append(flip)
    return schemas.SampleFlips(
        task=resolved,
        a_checkpoint_id=ca.id,
        b_checkpoint_id=cb.id,
        a_step=ca.step,
        b_step=cb.step,
        common=len(common),
        learned=learned,
        forgotten=forgotten,
    )
