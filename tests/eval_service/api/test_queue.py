"""The job queue and score queries against a real ledger server (uvicorn subprocess, SQLite file)."""

from __future__ import annotations

import httpx
import pytest

from shared.client import LedgerError, StaleAttempt
from shared.schemas import CheckpointCreate, CompleteRequest, EvalSpec, Sample, TrainMetricRow


def _ckpt(ledger, step: int, name: str | None = None) -> str:
    d = ledger.checkpoint_root / (name or f"checkpoint-{step}")
    d.mkdir(parents=True, exist_ok=True)
    return str(d)


def _sample(i: int, correct: bool, category: str) -> Sample:
    return Sample(
        index=i,
        prompt=f"q{i}",
        response=f"a{i}",
        gold="1",
        correct=correct,
        format_ok=True,
        category=category,
    )


def test_enqueue_claim_heartbeat_complete_then_scores_best_compare(ledger):
    c = ledger.client()
    run = c.create_run("run-a", primary_task="arith")
    assert c.create_run("run-a").id == run.id  # idempotent by name
    spec = EvalSpec(task="arith", limit=4)
    ids = {}
    for step in (10, 20):
        res = c.enqueue(spec, path=_ckpt(ledger, step), run="run-a")
        assert res.created and res.job.step == step and res.job.status == "queued"
        ids[step] = res.job.checkpoint_id

    accuracy = {20: 0.75, 10: 0.25}
    for _ in range(2):
        lease = c.claim("w1", lease_seconds=30)
        assert lease.attempt == 1 and lease.job.status == "leased" and lease.worker_id == "w1"
        renewed = c.heartbeat(lease, lease_seconds=60)
        assert renewed.lease_expires_at > lease.lease_expires_at
        step = lease.job.step
        samples = [
            _sample(0, True, "correct"),
            _sample(1, False, "wrong_answer"),
            _sample(2, False, "no_answer"),
        ]
        body = CompleteRequest(
            worker_id="w1",
            attempt=lease.attempt,
            metrics={"accuracy": accuracy[step], "format_accuracy": 1.0},
            samples=samples,
            info={"swap_ms": 15},
        )
        res = c.complete(lease.job.id, body)
        assert res.metrics["accuracy"] == accuracy[step] and res.step == step
        assert c.complete(lease.job.id, body) == res  # a replay of the same attempt gets the stored result
    assert c.claim("w1") is None  # 204: nothing left

    rows = c.scores("run-a")
    assert [r.step for r in rows] == [10, 20]
    # the ledger adds the flips since the previous checkpoint (the same samples here: none)
    flips = {"eval/flip_rate": 0.0, "eval/learned": 0.0, "eval/forgotten": 0.0}
    assert rows[1].metrics == {"eval/accuracy": 0.75, "eval/format_accuracy": 1.0, **flips}
    best = c.best("run-a", "eval/accuracy")
    assert best.row.step == 20
    assert c.best("run-a", "eval/accuracy", mode="min").row.step == 10
    cmp = c.compare(ids[10], ids[20])
    assert cmp.delta["eval/accuracy"] == pytest.approx(0.5)

    job_id = c.list_jobs(run="run-a", status="done")[0].id
    page = c.samples(job_id, correct=False)
    assert page.total == 2 and {s.category for s in page.items} == {"wrong_answer", "no_answer"}
    assert c.samples(job_id, category="no_answer").items[0].index == 2
    assert c.samples(job_id, offset=1, limit=1).items[0].index == 1
    assert c.result(job_id).info == {"swap_ms": 15}

    with pytest.raises(LedgerError) as e:
        c.best("run-a", "eval/nope")
    assert e.value.status == 422 and "eval/nope" in str(e.value)

    metrics = httpx.get(f"{ledger.url}/metrics").text
    assert 'duet_jobs{status="done"} 2.0' in metrics
    assert "duet_claims_total 2.0" in metrics
    assert "duet_job_latency_seconds_count 2.0" in metrics


def test_dedupe_force_cancel_and_latest_first_order(ledger):
    c = ledger.client()
    c.create_run("r")
    spec = EvalSpec(task="arith")
    first = c.enqueue(spec, path=_ckpt(ledger, 10), run="r")
    again = c.enqueue(spec, path=_ckpt(ledger, 10), run="r")
    assert not again.created and again.job.id == first.job.id
    by_id = c.enqueue(spec, checkpoint_id=first.job.checkpoint_id)
    assert not by_id.created
    by_step = c.enqueue(spec, run="r", step=10)
    assert not by_step.created
    other_spec = c.enqueue(EvalSpec(task="arith", limit=3), checkpoint_id=first.job.checkpoint_id)
    assert other_spec.created
    forced = c.enqueue(spec, checkpoint_id=first.job.checkpoint_id, force=True)
    assert forced.created and forced.job.id != first.job.id

    # cancel: a cancelled job is not claimed, and a cancelled equal job does not block re-enqueue
    for j in (first.job.id, other_spec.job.id, forced.job.id):
        assert c.cancel(j).status == "cancelled"
    assert c.claim("w") is None
    assert c.enqueue(spec, checkpoint_id=first.job.checkpoint_id).created

    # latest-first: steps enqueued oldest first come back newest first; priority beats step
    for job in c.list_jobs(status="queued"):
        c.cancel(job.id)
    for step in (100, 300, 200):
        c.enqueue(spec, path=_ckpt(ledger, step), run="r")
    urgent = c.enqueue(spec, path=_ckpt(ledger, 50), run="r", priority=5)
    order = []
    while (lease := c.claim("w", lease_seconds=30)) is not None:
        order.append(lease.job.step)
        c.complete(
            lease.job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": 1})
        )
    assert order == [urgent.job.step, 300, 200, 100]
    with pytest.raises(LedgerError) as e:
        c.cancel(urgent.job.id)
    assert e.value.status == 409  # done jobs stay done

    # a worker whose leased job was cancelled gets 409 and stores nothing
    job = c.enqueue(spec, path=_ckpt(ledger, 400), run="r").job
    lease = c.claim("w", lease_seconds=30)
    assert lease.job.id == job.id
    c.cancel(job.id)
    with pytest.raises(StaleAttempt):
        c.complete(job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": 1}))
    with pytest.raises(LedgerError) as e:
        c.result(job.id)
    assert e.value.status == 404


def test_fail_release_retry_and_dead(ledger):
    c, admin = ledger.client(), ledger.admin_client()
    c.create_run("r")
    job = c.enqueue(EvalSpec(task="arith"), path=_ckpt(ledger, 1), run="r").job
    assert job.max_attempts == 3

    lease = c.claim("w")
    back = c.release(lease)  # a hand-back is not a failure
    assert back.status == "queued" and back.max_attempts == 4
    for n in range(2, 5):
        lease = c.claim("w")
        assert lease.attempt == n
        after = c.fail(lease, f"boom {n}")
    assert after.status == "dead" and after.last_error == "boom 4"
    assert c.claim("w") is None

    with pytest.raises(LedgerError) as e:
        c.request("POST", f"/v1/jobs/{job.id}/retry")
    assert e.value.status == 403  # admin only
    retried = admin.request("POST", f"/v1/jobs/{job.id}/retry")
    assert retried["status"] == "queued"
    lease = c.claim("w")
    assert lease.attempt == 5
    dead = c.fail(lease, "checkpoint refused: auto_map", retryable=False)
    assert dead.status == "dead" and dead.last_error == "checkpoint refused: auto_map"
    with pytest.raises(StaleAttempt):  # the dead attempt cannot write any more
        c.heartbeat(lease)


def test_train_metrics_checkpoints_and_task_resolution(ledger):
    c = ledger.client()
    run = c.create_run("r", primary_task="gsm")
    rows = [TrainMetricRow(step=s, key="train/loss", value=1.0 / (s + 1)) for s in range(5)]
    assert c.log_train_metrics(run.id, rows).inserted == 5
    again = c.log_train_metrics(run.id, [*rows[3:], TrainMetricRow(step=5, key="train/loss", value=0.1)])
    assert (again.inserted, again.duplicates) == (1, 2)
    assert [r.step for r in c.train_metrics("r", key="train/loss")] == [0, 1, 2, 3, 4, 5]

    ck = c.register_checkpoint(CheckpointCreate(run_id=run.id, step=7, path=_ckpt(ledger, 7)))
    assert c.register_checkpoint(CheckpointCreate(run_id=run.id, step=7, path=_ckpt(ledger, 7))).id == ck.id
    assert [x.step for x in c.list_checkpoints(run.name)] == [7]

    for task, acc in (("arith", 0.2), ("gsm", 0.6)):
        c.enqueue(EvalSpec(task=task), checkpoint_id=ck.id)
        lease = c.claim("w")
        c.complete(
            lease.job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": acc})
        )
    # two tasks: the primary one answers when none is given
    assert c.scores("r")[0].metrics["eval/accuracy"] == 0.6
    assert c.scores("r", task="arith")[0].metrics["eval/accuracy"] == 0.2

    c.create_run("r2")  # no primary task
    ck2 = c.register_checkpoint(CheckpointCreate(run_id=c.get_run("r2").id, step=1, path=_ckpt(ledger, 1)))
    for task in ("arith", "gsm"):
        c.enqueue(EvalSpec(task=task), checkpoint_id=ck2.id)
        lease = c.claim("w")
        c.complete(
            lease.job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": 1})
        )
    with pytest.raises(LedgerError) as e:
        c.scores("r2")
    assert e.value.status == 422 and "task" in str(e.value)

    # regrade (admin) replaces metrics and samples in place
    job = c.list_jobs(run="r2", status="done")[0]
    with pytest.raises(LedgerError) as e:
        c.regrade(job.id, grader_version="2", metrics={"accuracy": 0.5}, samples=[])
    assert e.value.status == 403
    res = ledger.admin_client().regrade(
        job.id, grader_version="2", metrics={"accuracy": 0.5}, samples=[_sample(0, False, "wrong_answer")]
    )
    assert res.grader_version == "2" and res.metrics == {"accuracy": 0.5}
    assert c.samples(job.id).total == 1

    assert ledger.sql("select count(*) from eval_results") == [(4,)]
    assert ledger.sql("select count(*) from train_metrics") == [(6,)]
