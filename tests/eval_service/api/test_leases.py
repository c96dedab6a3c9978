"""Leases with real worker processes: crashes, stalls, concurrency, and a crashing server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from shared.client import LedgerClient, LedgerUnavailable
from shared.schemas import CompleteRequest, EvalSpec, TrainMetricRow
from tests.fixtures.ledger import REPO

FAST = {"DUET_SWEEP_INTERVAL_S": "0.2"}


def wait_for(cond, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)  # poll interval
    raise AssertionError(f"timed out waiting for {what}")


def _worker(ledger, worker_id: str, lease_s: float) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.eval_service.api.lease_worker",
            ledger.url,
            ledger.token,
            worker_id,
            str(lease_s),
        ],
        cwd=REPO,
        env=ledger.client_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _event(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    assert line, "worker exited without reporting"
    return json.loads(line)


def _one_job(ledger) -> int:
    c = ledger.client()
    c.create_run("r")
    d = ledger.checkpoint_root / "checkpoint-5"
    d.mkdir()
    return c.enqueue(EvalSpec(task="arith"), path=str(d), run="r").job.id


def test_sigkilled_worker_job_is_released_after_expiry_and_stored_once(ledger_factory):
    ledger = ledger_factory(env=FAST)
    job_id = _one_job(ledger)
    w = _worker(ledger, "doomed", lease_s=1.0)
    assert _event(w) == {"event": "claimed", "job": job_id, "attempt": 1}
    w.kill()  # SIGKILL mid-job
    w.wait()

    c = ledger.client()
    wait_for(lambda: c.get_job(job_id).status == "queued", what="lease expiry re-queue")
    assert c.get_job(job_id).last_error == "lease expired"
    lease = c.claim("rescuer")
    assert (lease.job.id, lease.attempt) == (job_id, 2)
    c.complete(job_id, CompleteRequest(worker_id="rescuer", attempt=2, metrics={"accuracy": 0.5}))
    assert ledger.sql("select count(*), max(attempt) from eval_results where job_id = :j", {"j": job_id}) == [
        (1, 2)
    ]


def test_stopped_worker_resumed_after_its_lease_passed_gets_409(ledger_factory):
    ledger = ledger_factory(env=FAST)
    job_id = _one_job(ledger)
    w = _worker(ledger, "sleepy", lease_s=1.0)
    try:
        assert _event(w)["attempt"] == 1
        w.send_signal(signal.SIGSTOP)
        c = ledger.client()
        lease = wait_for(lambda: c.claim("fresh", lease_seconds=60), what="job re-leased")
        assert lease.attempt == 2
        w.send_signal(signal.SIGCONT)
        w.stdin.write("complete\n")
        w.stdin.flush()
        assert _event(w) == {"event": "completed", "status": 409}
        with pytest.raises(Exception, match="404"):
            c.result(job_id)  # the stale attempt stored nothing
        res = c.complete(job_id, CompleteRequest(worker_id="fresh", attempt=2, metrics={"accuracy": 0.7}))
        assert res.metrics == {"accuracy": 0.7}
    finally:
        w.send_signal(signal.SIGCONT)
        w.kill()
        w.wait()


def test_job_failing_every_time_ends_dead_with_last_error(ledger):
    job_id = _one_job(ledger)
    c = ledger.client()
    for n in range(1, 4):
        lease = c.claim("w")
        assert lease.attempt == n
        c.fail(lease, f"CUDA error: attempt {n}")
    job = c.get_job(job_id)
    assert job.status == "dead" and job.last_error == "CUDA error: attempt 3" and job.finished_at
    assert c.claim("w") is None


def test_lease_expiry_on_the_last_attempt_makes_the_job_dead(ledger_factory):
    ledger = ledger_factory(env={**FAST, "DUET_MAX_ATTEMPTS": "1"})
    job_id = _one_job(ledger)
    c = ledger.client()
    assert c.claim("w", lease_seconds=0.2).attempt == 1
    job = wait_for(lambda: (j := c.get_job(job_id)).status == "dead" and j, what="dead after expiry")
    assert job.last_error == "lease expired"


def test_eight_concurrent_claimers_never_share_a_job(ledger):
    c = ledger.client()
    c.create_run("r")
    d = ledger.checkpoint_root / "checkpoint-1"
    d.mkdir()
    ck = c.enqueue(EvalSpec(task="t", limit=1), path=str(d), run="r").job.checkpoint_id
    for i in range(2, 201):
        c.enqueue(EvalSpec(task="t", limit=i), checkpoint_id=ck)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.eval_service.api.claimer", ledger.url, ledger.token, f"w{i}"],
            cwd=REPO,
            env=ledger.client_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    errors = [e for o in outs for e in o["errors"]]
    assert errors == []
    claimed = [job for o in outs for job, _attempt in o["claimed"]]
    assert len(claimed) == 200 and len(set(claimed)) == 200
    assert sum(1 for o in outs if o["claimed"]) > 1  # the claims really were spread over processes
    assert len(c.list_jobs(status="done", limit=1000)) == 200
    assert "database is locked" not in ledger.log_tail(100_000)


def test_server_sigkill_during_retried_metric_stream_loses_and_duplicates_nothing(ledger):
    run_id = ledger.client().create_run("r").id
    acked: list[int] = []  # batch numbers the server acknowledged
    stop = threading.Event()
    errors: list[str] = []

    def stream() -> None:
        with LedgerClient(ledger.url, ledger.token, retry_for_s=30) as c:
            b = 0
            while not stop.is_set():
                rows = [TrainMetricRow(step=b, key=f"train/k{k}", value=b + k / 10) for k in range(20)]
                try:
                    c.log_train_metrics(run_id, rows)  # retried through the outage: same rows again
                except LedgerUnavailable as e:
                    errors.append(str(e))
                    return
                acked.append(b)
                b += 1

    t = threading.Thread(target=stream)
    t.start()
    try:
        wait_for(lambda: len(acked) >= 20, what="first acknowledged batches")
        ledger.kill(signal.SIGKILL)
        n_before = len(acked)
        ledger.start()
        wait_for(lambda: len(acked) >= n_before + 20, what="batches after restart")
    finally:
        stop.set()
        t.join(timeout=60)
    assert errors == []
    ledger.stop()
    if ledger.backend == "sqlite":
        assert ledger.sql("PRAGMA integrity_check") == [("ok",)]
    counts = dict(ledger.sql("select step, count(*) from train_metrics group by step"))
    for b in acked:
        assert counts.get(b) == 20, f"batch {b}: {counts.get(b)} rows"
    assert ledger.sql(
        "select count(*) from (select 1 from train_metrics group by run_id, step, key having count(*) > 1) d"
    ) == [(0,)]
    values = ledger.sql("select value from train_metrics where step=3 and key='train/k5'")
    assert values == [(3.5,)]
