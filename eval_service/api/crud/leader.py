"""Leader leases: one API replica at a time runs each singleton background job (the W&B outbox
drain, the lease sweep). A lease is a row of `leader_leases`; taking or renewing it is one
conditional write, so it works the same on SQLite and Postgres, and a replica that dies simply
stops renewing: its lease runs out and the next replica to try takes over."""

from __future__ import annotations

import enum
import os
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from eval_service.api.models import LeaderLease, utcnow


class LeaderJob(enum.StrEnum):
    """The singleton jobs replicas elect a leader for."""

    wandb_drain = "wandb-drain"
    lease_sweep = "lease-sweep"


def replica_name(replica_id: str = "") -> str:
    """This process's name in leader leases: the configured DUET_REPLICA_ID, else host:pid:random."""
    return replica_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _insert(session: Session):  # type: ignore[no-untyped-def]
    table = LeaderLease.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def acquire(session: Session, job: LeaderJob, holder: str, ttl_s: float, now: datetime | None = None) -> bool:
    """Take or renew `job`'s lease for `ttl_s` seconds; True when `holder` holds it now."""
    now = now or utcnow()
    expires = now + timedelta(seconds=ttl_s)
    # First claim of this job ever: the insert wins; a concurrent one does nothing.
    inserted = session.execute(
        _insert(session)
        .values(name=job.value, holder=holder, expires_at=expires)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    if inserted.rowcount == 1:
        return True
    # Renew our own lease, or take one that ran out. Postgres re-checks the condition on the row
    # a concurrent taker just wrote, so of two replicas racing for a dead lease only one wins.
    taken = session.execute(
        update(LeaderLease)
        .where(
            col(LeaderLease.name) == job.value,
            or_(col(LeaderLease.holder) == holder, col(LeaderLease.expires_at) < now),
        )
        .values(holder=holder, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    return taken.rowcount == 1


def release(session: Session, job: LeaderJob, holder: str) -> None:
    """Give the lease up now (clean shutdown), so another replica need not wait for it to run out."""
    session.execute(
        update(LeaderLease)
        .where(col(LeaderLease.name) == job.value, col(LeaderLease.holder) == holder)
        .values(expires_at=utcnow() - timedelta(seconds=1))
        .execution_options(synchronize_session=False)
    )


def holder_of(session: Session, job: LeaderJob) -> str | None:
    """The replica holding `job` now, or None when nobody does."""
    row = session.exec(select(LeaderLease).where(LeaderLease.name == job.value)).first()
    if row is None or row.expires_at < utcnow():
        return None
    return row.holder
