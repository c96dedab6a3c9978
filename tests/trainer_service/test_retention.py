"""duet's retention against a real ledger: keep last K, best K, and anything not yet evaluated or
held by a job; delete nothing when the ledger cannot be asked."""

from __future__ import annotations

import shutil
from pathlib import Path

from shared.checkpoint import published_checkpoints, write_marker
from shared.schemas import CheckpointCreate, CompleteRequest, EvalSpec
from trainer_service.config import RetentionSettings
from trainer_service.retention import apply_retention, plan_retention


def _publish(root: Path, step: int, model: Path) -> Path:
    d = root / f"checkpoint-{step}"
    shutil.copytree(model, d)
    write_marker(d, run="t-ret", step=step)
    return d


def test_retention_keeps_last_best_and_unfinished(tiny_model: Path, ledger):
    out = ledger.checkpoint_root / "out"
    dirs = {s: _publish(out, s, tiny_model) for s in (10, 20, 30, 40, 50)}
    (out / "checkpoint-60").mkdir()  # mid-save (no marker): never touched

    client = ledger.client()
    run = client.create_run("t-ret", primary_task="ones_digit")
    ids = {
        s: client.register_checkpoint(CheckpointCreate(run_id=run.id, step=s, path=str(dirs[s]))).id
        for s in (10, 20, 30, 40)
    }  # 50 is not registered yet
    for s in (10, 20, 30, 40):
        client.enqueue(EvalSpec(task="ones_digit", limit=5), checkpoint_id=ids[s])
    accuracy = {10: 0.9, 20: 0.1, 30: 0.5}
    for _ in range(4):
        lease = client.claim("w1")
        step = lease.job.step
        if step in accuracy:
            client.complete(
                lease.job.id,
                CompleteRequest(worker_id="w1", attempt=lease.attempt, metrics={"accuracy": accuracy[step]}),
            )
    # now: 10/20/30 scored, 40 leased by a job, 50 unregistered

    policy = RetentionSettings(keep_last=1, keep_best=1, best_metric="eval/accuracy", best_mode="max")
    deleted = apply_retention(out, client, "t-ret", policy, task="ones_digit")

    assert sorted(deleted) == [dirs[20], dirs[30]]
    assert [s for s, _ in published_checkpoints(out)] == [10, 40, 50]  # best, held by a job, last
    assert (out / "checkpoint-60").is_dir()
    assert not [p for p in out.iterdir() if p.name.startswith(".deleted")]

    # Ledger down: nothing may be deleted, even what the policy would drop.
    ledger.stop()
    down = ledger.client(retry_for_s=0.5)
    assert (
        apply_retention(out, down, "t-ret", RetentionSettings(keep_last=1, keep_best=0), task="ones_digit")
        == []
    )
    assert [s for s, _ in published_checkpoints(out)] == [10, 40, 50]


def test_plan_without_require_eval_still_spares_busy_checkpoints(tmp_path: Path):
    published = [(s, tmp_path / f"checkpoint-{s}") for s in (1, 2, 3, 4)]
    policy = RetentionSettings(keep_last=1, keep_best=0, require_eval=False)
    plan = plan_retention(published, policy, scores=[], registered={1, 2, 3, 4}, busy={2})
    assert [s for s, _ in plan.delete] == [1, 3]
    assert plan.keep == {4: ["last"], 2: ["eval job queued or running"]}
