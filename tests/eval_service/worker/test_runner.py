"""The job loop with the HF backend (torch only, in-process) against a real ledger: refusals,
posting every sample, and the spool when the ledger is down."""

from __future__ import annotations

import json
import shutil
import signal
import threading
from pathlib import Path

from eval_service.worker.config import WorkerSettings
from eval_service.worker.heartbeat import Heartbeat
from eval_service.worker.hf_backend import HFBackend
from eval_service.worker.main import build_spec
from eval_service.worker.runner import JobRunner, Write
from shared.schemas import JobStatus
from shared.spool import Spool

RUN = "runner-run"


def _runner(ledger, tmp_path: Path, base: Path, **kw) -> JobRunner:
    settings = WorkerSettings(
        backend="hf", run=RUN, base_model=base, limit=4, max_tokens=8, worker_id="hf-1", **kw
    )
    client = ledger.client(retry_for_s=1.0)
    run = client.create_run(RUN)
    spool = Spool(tmp_path / "spool.db")
    return JobRunner(settings, client, HFBackend(settings), spool, threading.Event(), run_id=run.id)


def test_checkpoints_that_would_run_code_are_refused(ledger, local_base, tmp_path):
    remote = tmp_path / "remote_code"
    shutil.copytree(local_base, remote)
    cfg = json.loads((remote / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.Model"}
    (remote / "config.json").write_text(json.dumps(cfg))
    pickled = tmp_path / "pickled"
    shutil.copytree(local_base, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")

    runner = _runner(ledger, tmp_path, local_base, exit_when_idle=True)
    c = ledger.client()
    spec = build_spec(runner.settings)
    a = c.enqueue(spec, path=str(remote), run=RUN, step=1).job
    b = c.enqueue(spec, path=str(pickled), run=RUN, step=2).job
    runner.run()
    ja, jb = c.get_job(a.id), c.get_job(b.id)
    assert ja.status == JobStatus.dead and "auto_map" in ja.last_error and ja.attempt == 1
    assert (
        jb.status == JobStatus.dead
        and "pickle-only" in jb.last_error
        and "pytorch_model.bin" in jb.last_error
    )


def test_every_sample_posted_with_timings(ledger, local_base, tmp_path):
    runner = _runner(ledger, tmp_path, local_base, exit_when_idle=True)
    c = ledger.client()
    job = c.enqueue(build_spec(runner.settings), path=str(local_base), run=RUN, step=0).job
    runner.run()
    res = c.result(job.id)
    assert res.metrics["n_samples"] == 4
    for key in ("engine_event", "load_s", "gen_s", "gen_tokens", "tokens_per_s", "grade_s"):
        assert key in res.info
    assert res.info["backend"] == "hf"
    page = c.samples(job.id)
    assert page.total == 4 and {s.index for s in page.items} == {0, 1, 2, 3}
    assert all(s.mean_entropy is not None and s.finish_reason in ("stop", "length") for s in page.items)


def test_result_spooled_while_ledger_down_then_replayed_once(ledger, local_base, tmp_path):
    runner = _runner(ledger, tmp_path, local_base)
    c = ledger.client()
    job = c.enqueue(build_spec(runner.settings), path=str(local_base), run=RUN, step=0).job
    lease = c.claim("hf-1", run_id=job.run_id)
    assert lease is not None
    with Heartbeat(c, lease, 60) as hb:
        body = runner._evaluate(lease, hb)
    ledger.kill(signal.SIGKILL)
    runner.post_complete(job.id, body)  # retries, then spools: nothing lost
    assert len(runner.spool) == 1
    assert runner.replay_spool() == 0 and len(runner.spool) == 1  # still down: kept
    ledger.start()
    runner.spool.append(Write.complete, runner.spool.pending()[0].payload)  # a duplicate replay
    assert runner.replay_spool() == 2 and len(runner.spool) == 0
    c = ledger.client()
    assert c.get_job(job.id).status == JobStatus.done
    assert c.samples(job.id).total == 4  # not doubled by the second replay
