"""Latency from a checkpoint's marker to its score being queryable over REST, on the tiny model.

    python bench/bench_latency.py [--checkpoints 5] [--limit 100]

Starts a real ledger and a real `duet worker` (vLLM, CPU) watching a directory, waits for the
base model's baseline row, then publishes perturbed checkpoints one at a time (weights first,
marker last, as the trainer does) and polls the REST scores until each appears. Split per
checkpoint: detect (marker -> job enqueued), swap (+ verify), generate, grade, and the rest
(claim wait, posting, storing, the REST poll).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoints", type=int, default=5)
    ap.add_argument("--limit", type=int, default=100, help="eval examples per checkpoint")
    a = ap.parse_args()

    from bench.bench_swap import perturbed
    from shared.checkpoint import write_marker
    from tests.fixtures.ledger import LedgerServer
    from trainer_service.tiny_model import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="duet-latency-"))
    root = tmp / "root"
    base = build_tiny_model(root / "base", task="ones_digit")
    ckdir = root / "run"
    ckdir.mkdir(parents=True)
    srv = LedgerServer(tmp / "ledger", checkpoint_root=root).start()
    env = {
        **srv.client_env(),
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "DUET_WORKER_SPOOL_PATH": str(tmp / "spool.db"),
        "DUET_WORKER_RESCAN_INTERVAL_S": "2",
    }
    log = open(tmp / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "worker",
            "--watch",
            str(ckdir),
            "--run",
            "lat",
            "--task",
            "ones_digit",
            "--limit",
            str(a.limit),
            "--max-tokens",
            "64",
            "--base-model",
            str(base),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    c = srv.client()
    try:
        wait_for_step(c, 0, deadline_s=300)  # engine start + baseline
        rows = []
        for i in range(1, a.checkpoints + 1):
            step = 10 * i
            staging = tmp / f"staging-{step}"
            perturbed(base, staging, seed=i)
            target = ckdir / f"checkpoint-{step}"
            shutil.move(staging, target)
            write_marker(target, run="lat", step=step)
            t_marker = time.time()
            t_done = wait_for_step(c, step, deadline_s=300)
            job = next(j for j in c.list_jobs(run="lat") if j.step == step)
            info = c.result(job.id).info
            total = t_done - t_marker
            detect = job.created_at.replace(tzinfo=UTC).timestamp() - t_marker
            swap = info.get("swap_s", info.get("load_s", 0.0)) + info.get("verify_s", 0.0)
            gen, grade = info["gen_s"], info["grade_s"]
            rows.append(
                (
                    step,
                    info["engine_event"],
                    total,
                    detect,
                    swap,
                    gen,
                    grade,
                    total - detect - swap - gen - grade,
                )
            )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
        srv.stop()

    print(
        f"tiny model, ones_digit, {a.limit} examples per checkpoint, vLLM on CPU ({os.cpu_count()} cores)\n"
    )
    print(
        "| step | engine | total s | detect s | swap+verify s | generate s | grade s | claim+store+poll s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | " + " | ".join(f"{x:.3f}" for x in r[2:]) + " |")
    med = [statistics.median(r[k] for r in rows) for k in range(2, 8)]
    print("| median | | " + " | ".join(f"{x:.3f}" for x in med) + " |")
    shutil.rmtree(tmp, ignore_errors=True)


def wait_for_step(client, step: int, deadline_s: float) -> float:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if any(r.step == step and "eval/accuracy" in r.metrics for r in client.scores("lat")):
                return time.time()
        except Exception:  # the run or its first result may not exist yet
            pass
        time.sleep(0.05)  # poll interval; this is the resolution of the measurement
    raise SystemExit(f"step {step} not scored within {deadline_s}s")


if __name__ == "__main__":
    main()
