"""Worker-side delivery rules against a real ledger: a dead job stays dead across the watcher's
reconcile passes until `duet retry`; a result meeting a 5xx is spooled and replayed, never thrown
away; a re-written checkpoint is refused once, loudly."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from eval_service.worker.config import WorkerSettings
from eval_service.worker.main import build_spec
from eval_service.worker.runner import JobRunner
from eval_service.worker.watcher import CheckpointWatcher
from shared.client import LedgerClient
from shared.schemas import CheckpointCreate, CompleteRequest, EvalSpec, FailRequest, JobStatus
from shared.spool import Spool
from tests.eval_service.worker.conftest import make_full
from tests.fixtures.ledger import REPO

RUN = "delivery-run"


def _watcher(ledger, root: Path) -> CheckpointWatcher:
    s = WorkerSettings(watch=root, run=RUN, poll=True, settle_s=0.05, limit=4)
    client = ledger.client()
    return CheckpointWatcher(s, client, client.create_run(RUN), build_spec(s))


def test_dead_job_stays_dead_across_reconciles_until_duet_retry(ledger, base_model, tmp_path):
    root = tmp_path / "ckpts"
    ck = make_full(base_model, root / "checkpoint-10", seed=1, run=RUN, step=10)
    w = _watcher(ledger, root)
    assert w.scan() == [ck]
    c = ledger.client()
    lease = c.claim("w")
    assert lease is not None
    # what the runner posts for a refused checkpoint (auto_map, pickle weights): final
    c.fail_job(
        lease.job.id, FailRequest(worker_id="w", attempt=lease.attempt, error="refused", retryable=False)
    )
    for _ in range(3):  # three reconcile passes (every reconcile_interval_s in a running watcher)
        w.reconcile()
    jobs = c.list_jobs(run=RUN)
    assert [(j.id, j.status) for j in jobs] == [(lease.job.id, JobStatus.dead)]

    env = {**ledger.client_env(), "DUET_API_TOKEN": ledger.admin_token}
    out = subprocess.run(
        [sys.executable, "-m", "cli", "retry", str(lease.job.id)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert c.get_job(lease.job.id).status == JobStatus.queued
    w.reconcile()
    assert len(c.list_jobs(run=RUN)) == 1


class _FlakyProxy:
    """A real HTTP server in front of the ledger that answers 503 while `down` is set (an overloaded
    proxy or a ledger failing its database), else forwards."""

    def __init__(self, upstream: str):
        self.down = threading.Event()
        self.hits_while_down = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if proxy.down.is_set():
                    proxy.hits_while_down += 1
                    self._answer(503, b'{"detail": "upstream unavailable"}', "application/json")
                    return
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")
                }
                r = httpx.request(
                    self.command, upstream + self.path, content=body, headers=headers, timeout=30
                )
                self._answer(r.status_code, r.content, r.headers.get("content-type", "application/json"))

            def _answer(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_result_meeting_5xx_is_spooled_and_replayed_not_thrown_away(ledger, tmp_path):
    c = ledger.client()
    ckpt = ledger.checkpoint_root / "checkpoint-3"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({}))
    job = c.enqueue(EvalSpec(task="arith"), path=str(ckpt), run="r").job
    lease = c.claim("w", lease_seconds=600)
    assert lease is not None and lease.job.id == job.id
    proxy = _FlakyProxy(ledger.url)
    spool = Spool(tmp_path / "spool.db")
    try:
        via_proxy = LedgerClient(proxy.url, ledger.token, retry_for_s=1.0)
        runner = JobRunner(WorkerSettings(), via_proxy, backend=None, spool=spool, stop=threading.Event())  # type: ignore[arg-type]
        body = CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": 0.75})
        proxy.down.set()
        runner.post_complete(job.id, body)
        assert proxy.hits_while_down > 1  # retried within the window first
        assert len(spool) == 1  # kept, not refused
        assert c.get_job(job.id).status == JobStatus.leased  # no `fail` reached the ledger
        proxy.down.clear()
        assert runner.replay_spool() == 1
    finally:
        proxy.close()
        spool.close()
    assert c.get_job(job.id).status == JobStatus.done
    assert c.result(job.id).metrics == {"accuracy": 0.75}


def test_rewritten_checkpoint_is_refused_once_not_retried_every_scan(ledger, base_model, tmp_path, caplog):
    root = tmp_path / "ckpts"
    c = ledger.client()
    run = c.create_run(RUN)
    old = make_full(base_model, tmp_path / "old" / "checkpoint-10", seed=1, run=RUN, step=10)
    c.register_checkpoint(CheckpointCreate(run_id=run.id, step=10, path=str(old)))
    new = make_full(base_model, root / "checkpoint-10", seed=2, run=RUN, step=10)  # a restarted run
    w = _watcher(ledger, root)
    with caplog.at_level("WARNING", logger="duet.worker.watcher"):
        assert w.scan() == []
        assert w.scan() == []
    refusals = [r for r in caplog.records if "not evaluated" in r.getMessage()]
    assert len(refusals) == 1 and str(new) in refusals[0].getMessage() and "409" in refusals[0].getMessage()
    assert [ck.path for ck in c.list_checkpoints(RUN)] == [str(old)]
