"""The ledger's retention grant (SQLite and PostgreSQL): a checkpoint is granted for deletion only
when no job is queued or leased on it and every due suite entry has a final result; pins, the
baseline and the grant/deleted record; enqueue and retry refuse what retention took."""

from __future__ import annotations

import pytest

from shared.client import LedgerError, error_detail
from shared.retention import RetentionCandidate
from shared.schemas import CompleteRequest
from tests.trainer_service.retention_scenario import Run, spec


def _claim(client, ckpt_id: int):
    lease = client.claim("w-grant")
    assert lease is not None and lease.job.checkpoint_id == ckpt_id
    return lease


def test_grant_refuses_every_checkpoint_something_still_needs(ledger):
    client = ledger.client()
    run = Run(client, ledger.checkpoint_root / "out", "t-grant", [0, 10, 20, 30, 40, 50, 60])
    ids = run.ids
    for s in (30, 40, 50, 60):
        client.enqueue(spec("main"), checkpoint_id=ids[s])
    assert run.work({}) == 4
    client.enqueue(spec("probe"), checkpoint_id=ids[50])
    client.fail(_claim(client, ids[50]), "checkpoint refused", retryable=False)  # dead: final
    cancelled = client.enqueue(spec("probe"), checkpoint_id=ids[40]).job
    client.cancel(cancelled.id)  # cancelled is "not now": no result
    leased = client.enqueue(spec("main"), checkpoint_id=ids[20]).job
    _claim(client, ids[20])
    queued = client.enqueue(spec("main"), checkpoint_id=ids[10]).job
    client.pin(ids[60])

    due = ["main", "probe"]
    answer = client.retention_grant(
        run.name, [RetentionCandidate(checkpoint_id=i, due=due) for i in ids.values()]
    )

    assert [c.step for c in answer.granted] == [50]
    assert answer.granted[0].state == "deleting"
    assert {r.step: r.reason for r in answer.refused} == {
        0: "the step-0 baseline is never deleted",
        10: f"job {queued.id} (main) is queued",
        20: f"job {leased.id} (main) is leased",
        30: "no final result yet for due suite entry probe",
        40: "no final result yet for due suite entry probe",
        60: "pinned",
    }
    # Without the second entry due, 30 may go.
    again = client.retention_grant(run.name, [RetentionCandidate(checkpoint_id=ids[30], due=["main"])])
    assert [c.step for c in again.granted] == [30]


def test_deleting_and_deleted_checkpoints_refuse_jobs_pins_and_retries(ledger):
    client = ledger.client()
    admin = ledger.admin_client()
    run = Run(client, ledger.checkpoint_root / "out", "t-taken", [10, 20])
    ids = run.ids
    client.enqueue(spec("main"), checkpoint_id=ids[10])
    client.fail(_claim(client, ids[10]), "bad weights", retryable=False)
    dead = client.list_jobs(run=run.name)[0]

    with pytest.raises(LedgerError) as e:
        client.report_deleted(ids[10])  # never granted
    assert e.value.status == 409 and "was not granted" in error_detail(e.value)

    cand = [RetentionCandidate(checkpoint_id=ids[10], due=["main"])]
    assert [c.id for c in client.retention_grant(run.name, cand).granted] == [ids[10]]
    # A lost answer: asking again grants the same checkpoint again.
    assert [c.id for c in client.retention_grant(run.name, cand).granted] == [ids[10]]
    for call, text in (
        (lambda: client.pin(ids[10]), f"cannot pin: checkpoint {ids[10]} (step 10) is being deleted"),
        (lambda: admin.retry(dead.id), f"checkpoint {ids[10]} (step 10) is being deleted by retention"),
        (lambda: client.enqueue(spec("main"), run=run.name, step=10), "is being deleted by retention"),
    ):
        with pytest.raises(LedgerError) as e:
            call()
        assert e.value.status == 409 and text in error_detail(e.value)

    gone = client.report_deleted(ids[10])
    assert gone.state == "deleted" and gone.deleted_at is not None
    assert client.report_deleted(ids[10]).deleted_at == gone.deleted_at  # idempotent
    assert client.retention_grant(run.name, cand).refused[0].reason == "already deleted"
    with pytest.raises(LedgerError, match="was deleted by retention"):
        client.enqueue(spec("main", limit=2), checkpoint_id=ids[10], force=True)
    assert client.get_checkpoint(ids[10]).state == "deleted"

    # Pins: a pinned checkpoint is refused; unpinned it may go.
    assert client.pin(ids[20]).pinned
    client.enqueue(spec("main"), checkpoint_id=ids[20])
    lease = _claim(client, ids[20])
    client.complete(
        lease.job.id, CompleteRequest(worker_id="w-grant", attempt=lease.attempt, metrics={"accuracy": 1})
    )
    cand20 = [RetentionCandidate(checkpoint_id=ids[20], due=["main"])]
    assert client.retention_grant(run.name, cand20).refused[0].reason == "pinned"
    assert not client.unpin(ids[20]).pinned
    assert [c.step for c in client.retention_grant(run.name, cand20).granted] == [20]


def test_grant_names_bad_candidates(ledger):
    client = ledger.client()
    a = Run(client, ledger.checkpoint_root / "a", "t-a", [10])
    b = Run(client, ledger.checkpoint_root / "b", "t-b", [10])
    with pytest.raises(LedgerError) as e:
        client.retention_grant(a.name, [RetentionCandidate(checkpoint_id=b.ids[10])])
    assert e.value.status == 422
    assert f"checkpoint {b.ids[10]} is not a checkpoint of run 't-a'" in error_detail(e.value)
    with pytest.raises(LedgerError) as e:
        client.retention_grant(a.name, [RetentionCandidate(checkpoint_id=999_999)])
    assert e.value.status == 404 and "checkpoint 999999 not found" in error_detail(e.value)
