"""Checkpoint retention as the ledger rules it: which checkpoints the trainer may delete, pins, and
the record of deletions.

Deletion is the one irreversible action in duet, so the trainer never decides it from a read:
`grant` checks a checkpoint and marks it `deleting` in ONE write transaction, and `enqueue` (and
`retry`) refuse a checkpoint that is not `present`. The two serialize on the checkpoint row:
SQLite runs every write transaction under BEGIN IMMEDIATE (core.db), one at a time; Postgres
locks the row `FOR UPDATE` on both sides, so an enqueue that committed first is seen by the
grant's job query (READ COMMITTED re-reads per statement), and one that waits on the lock re-reads
the row and finds it `deleting`. The lock is exclusive for enqueues too (not `FOR SHARE`): two
equal enqueues racing on two API replicas then run one after the other, and the second finds the
first's job instead of inserting a duplicate (the checkpoint would be evaluated twice). SQLite
renders no locking clause, so one query serves both.

    present --grant--> deleting --deleted (the trainer removed the files)--> deleted
"""

from __future__ import annotations

from sqlmodel import Session, select

from eval_service.api.crud.runs import get_run
from eval_service.api.errors import Conflict, Invalid, NotFound
from eval_service.api.models import Checkpoint, EvalJob, utcnow
from shared import schemas
from shared.retention import RetentionGrant, RetentionGrantRequest, RetentionRefusal
from shared.schemas import ACTIVE_STATUSES, CheckpointState, JobStatus

# A suite entry's result is final once a job for it is done, or dead (out of attempts, or refused):
# nothing will evaluate that entry on this checkpoint again on its own. A cancelled job is "not
# now", not a result, so it does not count.
FINAL_RESULT_STATUSES = frozenset({JobStatus.done, JobStatus.dead})


def _locked(session: Session, checkpoint_id: int) -> Checkpoint:
    """The checkpoint, re-read from the database under a row lock held until commit (Postgres)."""
    q = (
        select(Checkpoint)
        .where(Checkpoint.id == checkpoint_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    ckpt = session.exec(q).first()
    if ckpt is None:
        raise NotFound(f"checkpoint {checkpoint_id} not found")
    return ckpt


def _gone(ckpt: Checkpoint) -> str:
    """Why nothing may be queued on a checkpoint that is not present."""
    if ckpt.state == CheckpointState.deleting:
        return f"checkpoint {ckpt.id} (step {ckpt.step}) is being deleted by retention"
    when = f" at {ckpt.deleted_at:%Y-%m-%d %H:%M:%S} UTC" if ckpt.deleted_at else ""
    return f"checkpoint {ckpt.id} (step {ckpt.step}) was deleted by retention{when}; its results stay"


def require_present(session: Session, ckpt: Checkpoint) -> Checkpoint:
    """Lock `ckpt` against a concurrent grant or enqueue and refuse (409) one that retention took."""
    if ckpt.id is None:  # registered in this transaction: nothing can have granted it
        return ckpt
    ckpt = _locked(session, ckpt.id)
    if ckpt.state != CheckpointState.present:
        raise Conflict(_gone(ckpt))
    return ckpt


def _refusal(session: Session, ckpt: Checkpoint, due: list[str]) -> str | None:
    """Why `ckpt` must stay, or None when it may be deleted."""
    if ckpt.pinned:
        return "pinned"
    if ckpt.step == 0:
        return "the step-0 baseline is never deleted"
    jobs = list(session.exec(select(EvalJob).where(EvalJob.checkpoint_id == ckpt.id)))
    active = sorted((j for j in jobs if j.status in ACTIVE_STATUSES), key=lambda j: j.id or 0)
    if active:
        return "; ".join(f"job {j.id} ({j.task}) is {j.status.value}" for j in active)
    final = {j.task for j in jobs if j.status in FINAL_RESULT_STATUSES}
    missing = [name for name in dict.fromkeys(due) if name not in final]
    if missing:
        return (
            "no final result yet for due suite entr"
            + ("y " if len(missing) == 1 else "ies ")
            + (", ".join(missing))
        )
    return None


def grant(session: Session, run_ref: str, body: RetentionGrantRequest) -> RetentionGrant:
    """Mark each candidate `deleting` if nothing needs it: not pinned, not the baseline, no queued
    or leased job, and a final result (done or dead) for every suite entry due for it. A candidate
    already `deleting` is granted again (the trainer's earlier answer may have been lost)."""
    run = get_run(session, run_ref)
    due = {c.checkpoint_id: c.due for c in body.candidates}
    granted: list[schemas.CheckpointRead] = []
    refused: list[RetentionRefusal] = []
    for ckpt_id in sorted(due):  # one lock order for every grant: two never deadlock
        ckpt = _locked(session, ckpt_id)
        if ckpt.run_id != run.id:
            raise Invalid("candidates", f"checkpoint {ckpt_id} is not a checkpoint of run {run.name!r}")
        if ckpt.state == CheckpointState.deleted:
            refused.append(RetentionRefusal(checkpoint_id=ckpt_id, step=ckpt.step, reason="already deleted"))
            continue
        reason = None if ckpt.state == CheckpointState.deleting else _refusal(session, ckpt, due[ckpt_id])
        if reason is not None:
            refused.append(RetentionRefusal(checkpoint_id=ckpt_id, step=ckpt.step, reason=reason))
            continue
        ckpt.state = CheckpointState.deleting
        session.add(ckpt)
        granted.append(checkpoint_read(ckpt))
    session.flush()
    return RetentionGrant(granted=granted, refused=refused)


def mark_deleted(session: Session, checkpoint_id: int) -> Checkpoint:
    """The trainer removed a granted checkpoint's files: `deleted`, with the time. Idempotent."""
    ckpt = _locked(session, checkpoint_id)
    if ckpt.state == CheckpointState.present:
        raise Conflict(f"checkpoint {checkpoint_id} was not granted for deletion; ask for a grant first")
    if ckpt.state == CheckpointState.deleting:
        ckpt.state, ckpt.deleted_at = CheckpointState.deleted, utcnow()
        session.add(ckpt)
    return ckpt


def set_pinned(session: Session, checkpoint_id: int, pinned: bool) -> Checkpoint:
    """Pin (retention never grants it) or unpin. Pinning one that retention already took is a 409."""
    ckpt = _locked(session, checkpoint_id)
    if pinned and ckpt.state != CheckpointState.present:
        raise Conflict(f"cannot pin: {_gone(ckpt)}")
    ckpt.pinned = pinned
    session.add(ckpt)
    return ckpt


def get_checkpoint(session: Session, checkpoint_id: int) -> Checkpoint:
    ckpt = session.get(Checkpoint, checkpoint_id)
    if ckpt is None:
        raise NotFound(f"checkpoint {checkpoint_id} not found")
    return ckpt


def checkpoint_read(ckpt: Checkpoint) -> schemas.CheckpointRead:
    return schemas.CheckpointRead.model_validate(ckpt, from_attributes=True)
