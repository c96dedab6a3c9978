"""Grant and enqueue racing for one checkpoint on PostgreSQL, where transactions really overlap:
one side's transaction is held open here (the ledger's own crud code, in a session of the
server's database), the other side is a request to the real server, which must wait on the
checkpoint row lock and then see the first side's outcome. (SQLite runs write transactions one
at a time under BEGIN IMMEDIATE: there is no overlap to test.)"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from eval_service.api.crud import jobs, retention, runs
from shared import schemas
from shared.client import LedgerError, error_detail
from shared.retention import RetentionCandidate, RetentionGrantRequest
from tests.trainer_service.retention_scenario import Run, spec


@pytest.fixture
def ledger_backend() -> str:
    return "postgres"


def _wait_until_blocked(ledger, request: Future, timeout_s: float = 30.0) -> None:
    """Until the server's request waits on a row lock (polled; it cannot finish before we commit)."""
    deadline = time.monotonic() + timeout_s
    query = "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()"
    while ledger.sql(query)[0][0] == 0:
        assert not request.done(), f"the request did not wait for the lock: {request.result()}"
        assert time.monotonic() < deadline, "the request never waited on the checkpoint row lock"
        time.sleep(0.02)  # poll interval


def _scored_run(ledger, name: str) -> Run:
    client = ledger.client()
    run = Run(client, ledger.checkpoint_root / name, name, [10, 20])
    for ckpt_id in run.ids.values():
        client.enqueue(spec("main"), checkpoint_id=ckpt_id)
    run.work({})
    return run


def test_enqueue_waiting_on_an_open_grant_is_refused(ledger):
    run = _scored_run(ledger, "t-lock-a")
    client = ledger.client()
    db = Database(ServerSettings(db_url=ledger.db_url))
    body = RetentionGrantRequest(candidates=[RetentionCandidate(checkpoint_id=run.ids[10], due=["main"])])
    try:
        with ThreadPoolExecutor(1) as pool:
            with db.write() as session:
                assert [c.step for c in retention.grant(session, run.name, body).granted] == [10]
                request = pool.submit(client.enqueue, spec("main", limit=2), checkpoint_id=run.ids[10])
                _wait_until_blocked(ledger, request)
            with pytest.raises(LedgerError) as e:
                request.result(timeout=30)
    finally:
        db.dispose()
    assert e.value.status == 409
    assert error_detail(e.value) == f"checkpoint {run.ids[10]} (step 10) is being deleted by retention"
    assert all(j.spec.limit == 5 for j in client.list_jobs(run=run.name))  # no job landed on it


def test_grant_waiting_on_an_open_enqueue_sees_the_job(ledger):
    run = _scored_run(ledger, "t-lock-b")
    client = ledger.client()
    db = Database(ServerSettings(db_url=ledger.db_url, checkpoint_root=ledger.checkpoint_root))
    cand = [RetentionCandidate(checkpoint_id=run.ids[10], due=["main"])]
    try:
        with ThreadPoolExecutor(1) as pool:
            with db.write() as session:
                body = schemas.JobCreate(checkpoint_id=run.ids[10], spec=spec("main", limit=2))
                job, created = jobs.enqueue(session, db.settings, body)
                assert created
                request = pool.submit(client.retention_grant, run.name, cand)
                _wait_until_blocked(ledger, request)
            answer = request.result(timeout=30)
    finally:
        db.dispose()
    assert answer.granted == []
    assert [r.reason for r in answer.refused] == [f"job {job.id} (main) is queued"]
    assert client.get_checkpoint(run.ids[10]).state == "present"


def test_equal_enqueues_racing_on_two_replicas_make_one_job(ledger):
    """Two workers (or two API replicas) enqueue the same eval of the same checkpoint at once, as
    both workers do for the step-0 baseline when they start together: the second waits for the
    first's transaction and gets its job back, so the checkpoint is evaluated once, not twice."""
    run = _scored_run(ledger, "t-lock-c")
    client = ledger.client()
    db = Database(ServerSettings(db_url=ledger.db_url, checkpoint_root=ledger.checkpoint_root))
    body = schemas.JobCreate(checkpoint_id=run.ids[20], spec=spec("main", limit=3))
    try:
        with ThreadPoolExecutor(1) as pool:
            with db.write() as session:
                job, created = jobs.enqueue(session, db.settings, body)
                assert created
                request = pool.submit(client.enqueue, body.spec, checkpoint_id=run.ids[20])
                _wait_until_blocked(ledger, request)
            answer = request.result(timeout=30)
    finally:
        db.dispose()
    assert (answer.job.id, answer.created) == (job.id, False)
    same = [j for j in client.list_jobs(run=run.name) if j.checkpoint_id == run.ids[20] and j.spec.limit == 3]
    assert [j.id for j in same] == [job.id]


def test_equal_registrations_racing_on_two_replicas_return_one_checkpoint(ledger):
    """Two workers register the same new checkpoint at once (both saw its marker): the second
    insert waits on the (run, step) unique index, then gets the first's checkpoint back, not a 500."""
    run = _scored_run(ledger, "t-lock-d")
    client = ledger.client(retry_for_s=0)  # a 500 would be retried away: the answer must be the first
    db = Database(ServerSettings(db_url=ledger.db_url, checkpoint_root=ledger.checkpoint_root))
    path = ledger.checkpoint_root / "t-lock-d" / "checkpoint-30"
    path.mkdir(parents=True)
    body = schemas.CheckpointCreate(run_id=client.get_run(run.name).id, step=30, path=str(path))
    try:
        with ThreadPoolExecutor(1) as pool:
            with db.write() as session:
                first = runs.register_checkpoint(session, db.settings, body)
                first_id = first.id
                request = pool.submit(client.register_checkpoint, body)
                _wait_until_blocked(ledger, request)
            answer = request.result(timeout=30)
    finally:
        db.dispose()
    assert answer.id == first_id
    assert [c.id for c in client.list_checkpoints(run.name) if c.step == 30] == [first_id]
