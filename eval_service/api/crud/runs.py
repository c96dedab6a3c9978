"""Runs, their train metrics and their checkpoints."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import Row, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from eval_service.api.core.config import ServerSettings
from eval_service.api.crud import outbox
from eval_service.api.errors import Conflict, Invalid, NotFound
from eval_service.api.models import Checkpoint, Run, TrainMetric
from shared import schemas
from shared.checkpoint import CheckpointError, checkpoint_step, detect_kind, read_marker
from shared.fields import INT64_MAX

# --- runs ---------------------------------------------------------------------------------------


def get_run(session: Session, ref: str | int, *, field: str | None = None) -> Run:
    """A run by id or by name; `field` names the request field to blame (422) instead of a 404."""
    run = None
    text = str(ref)
    # ASCII digits within int64 only: "²".isdigit() is true, and a larger number overflows SQL
    if text.isascii() and text.isdigit() and int(text) <= INT64_MAX:
        run = session.get(Run, int(text))
    if run is None:
        run = session.exec(select(Run).where(Run.name == text)).first()
    if run is None:
        if field:
            raise Invalid(field, f"no run named or numbered {text!r}")
        raise NotFound(f"run {text!r} not found")
    return run


def create_run(session: Session, body: schemas.RunCreate) -> Run:
    """Idempotent by name: the existing run is returned unchanged (primary_task filled if unset)."""
    run = session.exec(select(Run).where(Run.name == body.name)).first()
    if run is not None:
        if run.primary_task is None and body.primary_task:
            run.primary_task = body.primary_task
            session.add(run)
        return run
    run = Run(
        name=body.name,
        base_model=body.base_model,
        primary_task=body.primary_task,
        config=body.config,
        wandb_run_id=uuid.uuid4().hex[:12],
    )
    session.add(run)
    session.flush()
    return run


def list_runs(session: Session, offset: int = 0, limit: int = 1000) -> list[Run]:
    return list(session.exec(select(Run).order_by(Run.id).offset(offset).limit(limit)))


# --- train metrics ------------------------------------------------------------------------------


def insert_ignore(
    session: Session, model: type[SQLModel], rows: list[dict], conflict: list[str], returning: list[str]
) -> list[Row]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING; the one dialect-specific upsert helper."""
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    ins = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
    stmt = ins(table).on_conflict_do_nothing(index_elements=conflict)
    stmt = stmt.returning(*[table.c[c] for c in returning])
    return list(session.execute(stmt, rows).all()) if rows else []


def ingest_train_metrics(session: Session, batch: schemas.TrainMetricsBatch) -> tuple[int, int]:
    """Store new rows (duplicates of run+step+key are ignored and counted) and queue them for W&B.
    Returns (inserted, duplicates)."""
    run = session.get(Run, batch.run_id)
    if run is None:
        raise Invalid("run_id", f"no run with id {batch.run_id}")
    if session.get_bind().dialect.name == "postgresql":
        inserted = _insert_train_metrics_pg(session, run.id, batch.rows)
    else:
        rows = [{"run_id": run.id, "step": r.step, "key": r.key, "value": r.value} for r in batch.rows]
        inserted = insert_ignore(
            session, TrainMetric, rows, ["run_id", "step", "key"], ["step", "key", "value"]
        )
    outbox.queue_train_metrics(session, run.id, [(step, key, value) for step, key, value in inserted])
    return len(inserted), len(batch.rows) - len(inserted)


# Postgres: the batch goes as three array parameters, one short statement whatever its size. A
# multi-row VALUES list costs 4 parameters a row, and parsing and binding them was most of the
# ingest time (about 5k rows/s); arrays are bound in binary.
_PG_INGEST = text(
    "INSERT INTO train_metrics (run_id, step, key, value) "
    "SELECT :run_id, t.step, t.key, t.value "
    "FROM unnest(CAST(:steps AS bigint[]), CAST(:keys AS text[]), CAST(:values AS float8[])) "
    "AS t(step, key, value) "
    "ON CONFLICT (run_id, step, key) DO NOTHING RETURNING step, key, value"
)


def _insert_train_metrics_pg(session: Session, run_id: int, rows: list[schemas.TrainMetricRow]) -> list[Row]:
    params = {
        "run_id": run_id,
        "steps": [r.step for r in rows],
        "keys": [r.key for r in rows],
        "values": [r.value for r in rows],
    }
    return list(session.execute(_PG_INGEST, params).all()) if rows else []


def list_train_metrics(
    session: Session, run_ref: str, key: str | None, since_step: int | None = None
) -> list[TrainMetric]:
    """The run's train metrics by step; with `since_step` only the later ones (a poll's new rows)."""
    run = get_run(session, run_ref)
    q = select(TrainMetric).where(TrainMetric.run_id == run.id)
    if key:
        q = q.where(TrainMetric.key == key)
    if since_step is not None:
        q = q.where(TrainMetric.step > since_step)
    return list(session.exec(q.order_by(TrainMetric.step, TrainMetric.key)))


# --- checkpoints --------------------------------------------------------------------------------


def resolve_checkpoint_path(settings: ServerSettings, path: str, field: str = "path") -> str:
    """Resolve symlinks and `..`; the result must lie inside the checkpoint root."""
    if "\x00" in path:
        raise Invalid(field, "contains a NUL byte")
    root = os.path.realpath(settings.checkpoint_root)
    real = os.path.realpath(os.path.join(root, path))  # relative paths are taken from the root
    try:
        inside = os.path.commonpath([root, real]) == root
    except ValueError:
        inside = False
    if not inside:
        raise Invalid(field, f"{path!r} resolves to {real!r}, outside the checkpoint root {root!r}")
    return real


def _checkpoint_at(session: Session, run_id: int, step: int) -> Checkpoint | None:
    return session.exec(
        select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step)
    ).first()


def same_checkpoint(
    session: Session, existing: Checkpoint, path: str, fingerprint: str | None, algorithm: str | None = None
) -> Checkpoint:
    """The one rule for registering a (run, step) that is already registered: the same directory
    with the same weights is the same checkpoint (returned; its fingerprint filled in if it was
    unknown). Anything else -- another directory, or the same one re-written with other weights
    -- is a 409 naming the difference: a step's results belong to the weights that were
    evaluated, so re-written weights must be registered under a new run, never silently
    deduplicated against the old results (docs/reliability.md)."""
    diffs = []
    if existing.path != path:
        diffs.append(f"path {existing.path!r} != {path!r}")
    if existing.fingerprint and fingerprint and existing.fingerprint != fingerprint:
        diffs.append(f"fingerprint {existing.fingerprint} != {fingerprint} (the weights were re-written)")
    if diffs:
        raise Conflict(
            f"run {existing.run_id} already has a different checkpoint at step {existing.step}: "
            + "; ".join(diffs)
        )
    if existing.fingerprint is None and fingerprint:
        existing.fingerprint = fingerprint
        session.add(existing)
    if existing.algorithm is None and algorithm:  # registered first by a caller that did not know it
        existing.algorithm = algorithm
        session.add(existing)
    return existing


def register_checkpoint(
    session: Session, settings: ServerSettings, body: schemas.CheckpointCreate
) -> Checkpoint:
    """Idempotent on (run, step) for the same weights; a different checkpoint there is a 409."""
    if session.get(Run, body.run_id) is None:
        raise Invalid("run_id", f"no run with id {body.run_id}")
    real = resolve_checkpoint_path(settings, body.path)
    existing = _checkpoint_at(session, body.run_id, body.step)
    if existing is not None:
        return same_checkpoint(session, existing, real, body.fingerprint, body.algorithm)
    ckpt = Checkpoint(
        run_id=body.run_id,
        step=body.step,
        path=real,
        kind=body.kind,
        fingerprint=body.fingerprint,
        algorithm=body.algorithm,
    )
    return _insert_or_same(session, ckpt)


def _insert_or_same(session: Session, ckpt: Checkpoint) -> Checkpoint:
    """Insert a new (run, step). If another transaction registered it first (two workers or two API
    replicas at once: on Postgres this insert waits on the unique index, then fails), the rule for
    an existing registration applies instead of a 500. The savepoint keeps the transaction usable."""
    try:
        with session.begin_nested():
            session.add(ckpt)
            session.flush()
        return ckpt
    except IntegrityError:
        existing = _checkpoint_at(session, ckpt.run_id, ckpt.step)
        if existing is None:  # another constraint failed: not the race this handles
            raise
        return same_checkpoint(session, existing, ckpt.path, ckpt.fingerprint, ckpt.algorithm)


def list_checkpoints(session: Session, run_ref: str) -> list[Checkpoint]:
    run = get_run(session, run_ref)
    return list(session.exec(select(Checkpoint).where(Checkpoint.run_id == run.id).order_by(Checkpoint.step)))


def checkpoint_for_job(session: Session, settings: ServerSettings, body: schemas.JobCreate) -> Checkpoint:
    """The checkpoint a job request names: by id, by run and step, or by path (registered on the
    way, with the run, step and kind taken from the request, the duet marker or the directory)."""
    if body.checkpoint_id is not None:
        ckpt = session.get(Checkpoint, body.checkpoint_id)
        if ckpt is None:
            raise Invalid("checkpoint_id", f"no checkpoint with id {body.checkpoint_id}")
        return ckpt
    if body.path is not None:
        return _checkpoint_from_path(session, settings, body)
    run = get_run(session, body.run or "", field="run")
    ckpt = _checkpoint_at(session, run.id, body.step)
    if ckpt is None:
        raise Invalid("step", f"run {run.name!r} has no checkpoint at step {body.step}")
    return ckpt


def _checkpoint_from_path(session: Session, settings: ServerSettings, body: schemas.JobCreate) -> Checkpoint:
    real = resolve_checkpoint_path(settings, body.path or "")
    if not os.path.isdir(real):
        raise Invalid("path", f"{body.path!r} is not a directory")
    try:
        marker = read_marker(Path(real))
    except CheckpointError as e:
        raise Invalid("path", str(e)) from e
    run_ref = body.run or (marker.run if marker else None)
    if not run_ref:
        raise Invalid("run", "give the run to register this checkpoint under (no duet marker names one)")
    step = body.step
    if step is None:
        step = checkpoint_step(real)
        if step is None and marker is not None:
            step = marker.step
    if step is None:
        raise Invalid("step", f"cannot tell the step of {body.path!r}: give it (no checkpoint-N, no marker)")
    try:
        run = get_run(session, run_ref)
    except NotFound:
        try:
            run = create_run(session, schemas.RunCreate(name=run_ref))
        except ValueError as e:
            raise Invalid("run", f"{run_ref!r} is not a valid run name") from e
    kind = body.kind or (marker.kind if marker else detect_kind(Path(real)))
    fingerprint = marker.fingerprint() if marker else None
    algorithm = marker.algorithm if marker else None
    existing = _checkpoint_at(session, run.id, step)
    if existing is not None:
        return same_checkpoint(session, existing, real, fingerprint, algorithm)
    ckpt = Checkpoint(
        run_id=run.id, step=step, path=real, kind=kind, fingerprint=fingerprint, algorithm=algorithm
    )
    return _insert_or_same(session, ckpt)
