"""`duet worker --suite` end to end on the real vLLM (CPU) engine: three entries with different
sampling and cadence over the baseline and three checkpoints, one engine load per checkpoint, the
entries' metrics namespaced in the ledger and in the offline W&B run, and the cadence skipping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.schemas import JobStatus
from tests.eval_service.worker.conftest import WorkerProc, make_full, worker_env
from tests.fixtures.wandb_files import read_offline_history

RUN = "suite-run"
TASKS = Path(__file__).parent / "data" / "lm_eval_tasks"


def _suite(path: Path) -> Path:
    path.write_text(
        f"""
entries:
  - name: full               # every checkpoint, greedy
    task: ones_digit
    limit: 6
    max_tokens: 16
  - name: probe              # every 2nd checkpoint, sampled, 2 per question, shorter
    task: ones_digit
    limit: 3
    n: 2
    temperature: 1.0
    max_tokens: 8
    seed: 3
    every: 2
  - name: harness            # a local lm-eval task on the same engine, every 3rd checkpoint
    task: lm_eval:duet_ones_digit_gen
    task_options: {{include_path: {json.dumps(str(TASKS))}, include_defaults: false}}
    limit: 3
    every: 3
"""
    )
    return path


@pytest.mark.slow
def test_suite_costs_one_load_per_checkpoint_and_namespaces_metrics(ledger, local_base, tmp_path):
    root = tmp_path / "ckpts"
    root.mkdir()
    for i, step in enumerate((100, 200, 300), start=1):
        make_full(local_base, root / f"checkpoint-{step}", seed=i, run=RUN, step=step, scale=0.05)
    # the trainer's last save: every entry is due on the final checkpoint whatever its cadence
    (root / "checkpoint-300" / "trainer_state.json").write_text(
        json.dumps({"global_step": 300, "max_steps": 300})
    )
    args = [
        "--watch",
        str(root),
        "--run",
        RUN,
        "--base-model",
        str(local_base),
        "--suite",
        str(_suite(tmp_path / "suite.yaml")),
    ]
    args += ["--dtype", "float32", "--worker-id", "w1", "--exit-when-idle"]
    worker = WorkerProc(args, worker_env(ledger, tmp_path), tmp_path / "worker.log")
    try:
        rc = worker.proc.wait(timeout=170)
    finally:
        worker.terminate()
    assert rc == 0, worker.log_tail()

    c = ledger.client()
    jobs = c.list_jobs(run=RUN)
    assert all(j.status == JobStatus.done for j in jobs), [(j.step, j.spec.name, j.last_error) for j in jobs]
    due = sorted((j.step, j.spec.name) for j in jobs)
    assert due == [
        (0, "full"), (0, "harness"), (0, "probe"),
        (100, "full"),
        (200, "full"), (200, "probe"),
        (300, "full"), (300, "harness"), (300, "probe"),
    ]  # fmt: skip

    # one engine load per checkpoint: the other jobs of its suite reuse the loaded weights
    loads: dict[int, list[str]] = {}
    for j in jobs:
        loads.setdefault(j.step, []).append(c.result(j.id).info["engine_event"])
    for step, events in loads.items():
        assert sum(e != "reuse" for e in events) == 1, (step, events)

    # per-entry scores; the different sampling shows in the metrics (n=2: pass@2)
    assert c.run_tasks(RUN)[0] == "full"
    probe = {r.step: r.metrics for r in c.scores(RUN, task="probe")}
    assert sorted(probe) == [0, 200, 300] and "eval/pass@2" in probe[200]
    assert probe[200]["eval/n_samples"] == 6
    full = {r.step: r.metrics for r in c.scores(RUN, task="full")}
    assert sorted(full) == [0, 100, 200, 300] and "eval/flip_rate" in full[100]
    harness = {r.step: r.metrics for r in c.scores(RUN, task="harness")}
    assert sorted(harness) == [0, 300] and "eval/accuracy" in harness[300]

    # W&B: every entry under eval/<entry>/, the first also flat, all at train/global_step
    assert ledger.flush_wandb() == 0
    run = c.get_run(RUN)
    history = read_offline_history(ledger.wandb_dir, run.wandb_run_id)
    keys = {k for h in history for k in h}
    assert {"eval/full/accuracy", "eval/probe/accuracy", "eval/harness/accuracy", "eval/accuracy"} <= keys
    assert {"eval/full/flip_rate", "eval/probe/pass@2"} <= keys
    at = {(h["train/global_step"], k) for h in history for k in h if k.startswith("eval/probe/")}
    assert {s for s, _ in at} == {0, 200, 300}
    flat = {h["train/global_step"]: h["eval/accuracy"] for h in history if "eval/accuracy" in h}
    assert flat == {s: m["eval/accuracy"] for s, m in full.items()}
