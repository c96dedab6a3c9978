"""Eval results and their graded samples: read a result, page through samples, regrade."""

from __future__ import annotations

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from eval_service.api.crud import flips, outbox, scores
from eval_service.api.crud.jobs import get_job
from eval_service.api.errors import Invalid, NotFound
from eval_service.api.models import EvalResult, Run, SampleRow
from shared import schemas

_SAMPLE_FIELDS = frozenset(schemas.Sample.model_fields)


def check_metrics(metrics: dict[str, float]) -> None:
    for k in metrics:
        # Names are relative to `eval/`: 'accuracy', or grouped like 'fail/truncated'.
        if k in flips.FLIP_METRICS:
            raise Invalid(f"metrics.{k}", f"{k!r} is computed by the ledger from the samples; do not send it")
        if not k or k.startswith(("/", "eval/", "train/")) or k.endswith("/") or "//" in k:
            raise Invalid(
                f"metrics.{k}",
                "metric names are relative like 'accuracy' or 'fail/truncated' (no eval/ prefix)",
            )


def _storable(value: object) -> object:
    # PostgreSQL text cannot hold NUL, which an untrained model does generate: store U+FFFD (the
    # replacement character) instead, on every backend alike.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def store_samples(session: Session, job_id: int, samples: list[schemas.Sample]) -> None:
    if samples:
        session.execute(
            SampleRow.__table__.insert(),  # type: ignore[attr-defined]
            [{"job_id": job_id, **{k: _storable(v) for k, v in x.model_dump().items()}} for x in samples],
        )


def get_result(session: Session, job_id: int) -> EvalResult:
    get_job(session, job_id)
    result = session.exec(select(EvalResult).where(EvalResult.job_id == job_id)).first()
    if result is None:
        raise NotFound(f"job {job_id} has no result yet")
    return result


TRUNCATED_FINISH = "length"  # the engine's finish_reason when a generation hit max_tokens


def list_samples(
    session: Session,
    job_id: int,
    correct: bool | None,
    category: str | None,
    offset: int,
    limit: int,
    *,
    truncated: bool | None = None,
    q: str | None = None,
) -> schemas.SamplePage:
    """One page of a job's samples, filtered by verdict, category, truncation (finish_reason
    "length") and `q`, a case-insensitive substring of prompt, response, gold or extracted answer."""
    get_job(session, job_id)
    conds = [SampleRow.job_id == job_id]
    if correct is not None:
        conds.append(SampleRow.correct == correct)
    if category:
        conds.append(SampleRow.category == category)
    if truncated is not None:
        hit_max = col(SampleRow.finish_reason) == TRUNCATED_FINISH
        conds.append(hit_max if truncated else or_(~hit_max, col(SampleRow.finish_reason).is_(None)))
    if q:
        fields = (SampleRow.prompt, SampleRow.response, SampleRow.gold, SampleRow.extracted)
        conds.append(or_(*(col(f).icontains(q, autoescape=True) for f in fields)))
    total = session.exec(select(func.count()).select_from(SampleRow).where(*conds)).one()
    rows = session.exec(
        select(SampleRow)
        .where(*conds)
        .order_by(SampleRow.index, SampleRow.sample, SampleRow.id)
        .offset(offset)
        .limit(limit)
    )
    # Built from the row's Sample fields: validating the row itself would hand back the row
    # (it is a Sample subclass) with its id and job_id.
    items = [schemas.Sample.model_validate(row.model_dump(include=_SAMPLE_FIELDS)) for row in rows]
    return schemas.SamplePage(total=total, offset=offset, limit=limit, items=items)


def regrade(
    session: Session,
    job_id: int,
    grader_version: str,
    metrics: dict[str, float],
    samples: list[schemas.Sample],
) -> EvalResult:
    """Replace a result's metrics and samples with a new grading of the same responses."""
    result = get_result(session, job_id)
    check_metrics(metrics)
    # Keep which grader the replaced metrics came from: the result's info lists every regrade.
    history = [*result.info.get("regrades", []), {"from": result.grader_version, "to": grader_version}]
    result.info = {**result.info, "regrades": history}  # a new dict: JSON columns track assignment
    result.grader_version, result.metrics = grader_version, metrics
    session.add(result)
    session.execute(SampleRow.__table__.delete().where(SampleRow.__table__.c.job_id == job_id))  # type: ignore[attr-defined]
    store_samples(session, job_id, samples)
    flips.record_flips(session, result)
    scores.index_metrics(session, result)  # what `best` queries
    outbox.queue_eval(session, session.get(Run, result.run_id), result.task, result.step, result.metrics)
    return result
