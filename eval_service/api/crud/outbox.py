"""The W&B outbox: rows written in the same transaction as the data they carry, drained by
`eval_service.api.wandb_sink`. Every payload carries `train/global_step` (W&B's own step is
never used: eval results arrive out of order)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, literal_column, update
from sqlmodel import Session, col, select

from eval_service.api.models import Checkpoint, Run, WandbOutbox, utcnow
from shared.schemas import Algorithm

# An outbox payload holding several W&B rows (one ingest batch: one row per step, in step order)
# keeps them here; any other payload is one W&B row.
ROWS_KEY = "rows"


def payload_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The W&B rows of one outbox payload, in the order they are logged."""
    rows = payload.get(ROWS_KEY)
    return list(rows) if isinstance(rows, list) else [payload]


def queue_train_metrics(session: Session, run_id: int, rows: list[tuple[int, str, float]]) -> None:
    """ONE outbox row for the (step, key, value) rows of an ingest batch, holding one W&B row per
    step: a row per step cost a statement parameter set each, most of a large batch's time."""
    by_step: dict[int, dict[str, float]] = defaultdict(dict)
    for step, key, value in rows:
        by_step[step][key] = value
    if by_step:
        steps = [{"train/global_step": step, **values} for step, values in sorted(by_step.items())]
        session.execute(
            WandbOutbox.__table__.insert(),  # type: ignore[attr-defined]
            {"run_id": run_id, "payload": {ROWS_KEY: steps}, "created_at": utcnow()},
        )


def eval_payload(headline_task: str, task: str, step: int, metrics: dict[str, float]) -> dict[str, Any]:
    """The W&B row of one eval result: every task's (suite entry's) metrics are
    `eval/<task>/<name>`; the headline task's are also the flat `eval/<name>`, so dashboards made
    before suites keep working."""
    row: dict[str, Any] = {"train/global_step": step, **{f"eval/{task}/{k}": v for k, v in metrics.items()}}
    if task == headline_task:
        row.update({f"eval/{k}": v for k, v in metrics.items()})
    return row


def queue_eval(session: Session, run: Run, task: str, step: int, metrics: dict[str, float]) -> None:
    """Queue one eval result. The run's headline task is fixed by its first eval result: its
    primary task if it has one, else the task evaluated first."""
    if run.wandb_primary_task is None:
        run.wandb_primary_task = run.primary_task or task
    payload = eval_payload(run.wandb_primary_task, task, step, metrics)
    # The training stage of the scored checkpoint (as train/stage: sft 0, grpo 1), so SFT and GRPO
    # checkpoints on one step axis are told apart in W&B; none for a base model.
    algorithm = session.exec(
        select(Checkpoint.algorithm).where(Checkpoint.run_id == run.id, Checkpoint.step == step)
    ).first()
    if algorithm in {a.value for a in Algorithm}:  # a marker may name a stage this ledger predates
        payload["eval/stage"] = float(Algorithm(algorithm).stage)
    session.add(WandbOutbox(run_id=run.id, payload=payload))
    session.add(run)


def pending(session: Session) -> int:
    """W&B rows waiting to be logged (a batched payload counts each of its rows)."""
    if session.get_bind().dialect.name == "postgresql":
        n_rows = func.json_array_length(literal_column(f"wandb_outbox.payload -> '{ROWS_KEY}'"))
    else:
        n_rows = func.json_array_length(WandbOutbox.payload, f"$.{ROWS_KEY}")
    total = session.exec(
        select(func.coalesce(func.sum(func.coalesce(n_rows, 1)), 0)).where(col(WandbOutbox.sent_at).is_(None))
    ).one()
    return int(total)


def next_batch(session: Session, limit: int) -> list[WandbOutbox]:
    return list(
        session.exec(
            select(WandbOutbox)
            .where(col(WandbOutbox.sent_at).is_(None))
            .order_by(WandbOutbox.id)
            .limit(limit)
        )
    )


def mark_sent(session: Session, ids: list[int]) -> None:
    if ids:
        session.execute(
            update(WandbOutbox)
            .where(col(WandbOutbox.id).in_(ids))
            .values(sent_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def keep_unsent(session: Session, outbox_id: int, rows: list[dict[str, Any]]) -> None:
    """Leave only `rows` of a batched payload pending: W&B took the others before it failed, and
    logging them again would duplicate them."""
    session.execute(
        update(WandbOutbox)
        .where(col(WandbOutbox.id) == outbox_id)
        .values(payload={ROWS_KEY: rows})
        .execution_options(synchronize_session=False)
    )
