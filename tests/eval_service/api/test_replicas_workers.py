"""Two ledger replicas on one PostgreSQL database and two real `duet worker` processes (vLLM CPU,
tiny model), each worker talking to its own replica: every checkpoint is scored exactly once, each
worker hot-swaps checkpoints into its engine, and W&B receives every result row once, also when
the replica that drains the outbox is SIGKILLed and draining moves to the other."""

from __future__ import annotations

import shutil
import signal
from collections import Counter
from pathlib import Path

import pytest

from shared.schemas import JobStatus
from tests.eval_service.api.test_replicas import LEADER, _drainer
from tests.eval_service.worker.conftest import WorkerProc, make_full, wait_for, worker_env
from tests.fixtures.wandb_files import read_offline_history

RUN = "replicas-run"


def _publish(base: Path, root: Path, step: int) -> None:
    staging = root.parent / f".staging-{step}"
    make_full(base, staging, seed=step, run=RUN, step=step)
    shutil.move(staging, root / f"checkpoint-{step}")


@pytest.mark.slow
@pytest.mark.parametrize("ledger_backend", ["postgres"])
def test_two_ledgers_two_workers_score_once_and_wandb_survives_the_drainer_dying(
    ledger_factory, tiny_model, tmp_path
):
    base = tmp_path / "base_model"
    shutil.copytree(tiny_model, base)
    root = tmp_path / "ckpts"
    root.mkdir()
    for step in (100, 200):
        _publish(base, root, step)
    env = {**LEADER, "DUET_WORKER_LEASE_SECONDS": "30"}
    a = ledger_factory(checkpoint_root=tmp_path, env={**env, "DUET_REPLICA_ID": "replica-a"})
    b = ledger_factory(checkpoint_root=tmp_path, db_url=a.db_url, env={**env, "DUET_REPLICA_ID": "replica-b"})
    c = a.client(retry_for_s=30)
    c.create_run(RUN)

    args = ["--watch", str(root), "--run", RUN, "--base-model", str(base), "--limit", "4"]
    args += ["--max-tokens", "8", "--dtype", "float32", "--rescan-interval-s", "1"]
    workers = {
        name: WorkerProc(
            [*args, "--worker-id", f"w-{name}"],
            worker_env(srv, tmp_path / name, DUET_WORKER_LEASE_SECONDS="30"),
            tmp_path / f"worker-{name}.log",
        )
        for name, srv in (("a", a), ("b", b))
    }
    for name in workers:
        (tmp_path / name).mkdir(exist_ok=True)

    def settled(steps: set[int]) -> bool:
        jobs = {j.step: j for j in c.list_jobs(run=RUN)}
        return steps <= set(jobs) and all(jobs[s].status == JobStatus.done for s in steps)

    def pending_outbox() -> int:
        return c_alive.sql("select count(*) from wandb_outbox where sent_at is null")[0][0]

    try:
        wait_for(lambda: settled({0, 100, 200}), 150, "the first checkpoints scored", workers["a"])
        c_alive = a
        wait_for(lambda: pending_outbox() == 0, 30, "the first rows drained")
        holder = _drainer(a)
        drainer, survivor = (a, b) if holder == "replica-a" else (b, a)
        drainer.kill(signal.SIGKILL)
        c_alive = survivor
        c = survivor.client(retry_for_s=30)
        for step in (300, 400, 500):
            _publish(base, root, step)
        wait_for(lambda: _drainer(survivor) not in (None, holder), 30, "the drain lease to move")
        drainer.start()  # back, like a restarted pod: its worker's calls go through again
        wait_for(lambda: settled({0, 100, 200, 300, 400, 500}), 150, "every checkpoint scored", workers["b"])
        wait_for(lambda: pending_outbox() == 0, 30, "every row drained by the survivor")
    finally:
        codes = {name: w.terminate() for name, w in workers.items()}
    assert codes == {"a": 0, "b": 0}, {n: w.log_tail() for n, w in workers.items()}
    assert survivor.flush_wandb() == 0

    # scored exactly once, each checkpoint by one attempt of one worker
    results = survivor.sql("select step, worker_id, info from eval_results")
    assert sorted(Counter(s for s, _, _ in results).items()) == [(s, 1) for s in (0, 100, 200, 300, 400, 500)]
    by_worker = Counter(w for _, w, _ in results)
    assert set(by_worker) == {"w-a", "w-b"}, by_worker
    events = {w: {info["engine_event"] for _, ww, info in results if ww == w} for w in by_worker}
    # Each worker loads its first checkpoint into a fresh engine and swaps in-place for every later
    # one. How the 6 checkpoints split between the two workers is a race: one may score only one.
    for w, e in events.items():
        assert "initial" in e and ("swap" in e) == (by_worker[w] > 1), (w, by_worker[w], events)
    assert not any("rebuild" in e for e in events.values()), events  # never a rebuild

    # W&B: one eval row per checkpoint, across both replicas' offline files
    rows = Counter()
    run_id = c.get_run(RUN).wandb_run_id
    for srv in (a, b):
        if any(srv.wandb_dir.rglob("*.wandb")):
            rows.update(
                h["train/global_step"]
                for h in read_offline_history(srv.wandb_dir, run_id)
                if "eval/accuracy" in h
            )
    assert sorted(rows.items()) == [(s, 1) for s in (0, 100, 200, 300, 400, 500)], rows
