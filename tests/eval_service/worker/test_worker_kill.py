"""A real `duet worker` (vLLM on CPU) SIGKILLed mid-evaluation: no engine process outlives it, and
the next worker evaluates the job again (attempt + 1) with one result for the checkpoint."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from shared.schemas import JobStatus
from tests.eval_service.worker.conftest import WorkerProc, make_full, wait_for, worker_env

pytestmark = pytest.mark.slow

RUN = "kill-run"


def _engine_procs(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.name().startswith("VLLM")]
    except psutil.Error:
        return []


def _gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes of `procs` still alive after `timeout` seconds (polled)."""
    deadline = time.monotonic() + timeout
    alive = procs
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)  # poll interval, not synchronisation
    return alive


def test_sigkilled_worker_leaves_no_engine_and_the_job_is_redone_once(ledger, local_base, tmp_path):
    root = tmp_path / "ckpts"
    make_full(local_base, root / "checkpoint-100", seed=1, run=RUN, step=100)
    args = ["--watch", str(root), "--run", RUN, "--limit", "64", "--max-tokens", "64", "--dtype", "float32"]
    env = worker_env(ledger, tmp_path, DUET_WORKER_LEASE_SECONDS="6", DUET_WORKER_WORKER_ID="w")
    c = ledger.client()
    c.create_run(RUN)

    first = WorkerProc(args, env, tmp_path / "worker1.log")
    try:
        engine = wait_for(lambda: _engine_procs(first.proc.pid), 300, "the engine processes", first)
        wait_for(
            lambda: [j for j in c.list_jobs(run=RUN) if j.status == JobStatus.leased],
            120,
            "a leased job",
            first,
        )
        tree = psutil.Process(first.proc.pid).children(recursive=True)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=30)
        left = _gone(tree, 60)
        assert left == [], f"left behind: {[(p.pid, p.name()) for p in left]}\n{first.log_tail()}"
        assert engine  # there was an engine to clean up
    finally:
        first.terminate()

    second = WorkerProc(args, env, tmp_path / "worker2.log")
    try:
        wait_for(
            lambda: all(j.status == JobStatus.done for j in c.list_jobs(run=RUN)), 400, "the redo", second
        )
    finally:
        rc = second.terminate()
    assert rc == 0, second.log_tail()
    (job,) = c.list_jobs(run=RUN)
    assert job.step == 100 and job.attempt == 2
    assert c.result(job.id).step == 100
    assert ledger.sql("select count(*) from eval_results") == [(1,)]
