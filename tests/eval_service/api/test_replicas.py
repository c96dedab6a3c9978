"""Several ledger replicas on one database (real servers, SQLite file and Postgres): concurrent
claimers through both each get a different job and none gets nothing while jobs are queued; one
replica at a time drains the W&B outbox, and when it is SIGKILLed the other takes over with every
row logged exactly once."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

from shared.schemas import EvalSpec, TrainMetricRow
from tests.fixtures.wandb_files import read_offline_history

LEADER = {"DUET_LEADER_LEASE_S": "1.5", "DUET_WANDB_DRAIN_INTERVAL_S": "0.2", "DUET_SWEEP_INTERVAL_S": "0.2"}


def wait_for(cond, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)  # poll interval, not synchronisation
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _replicas(ledger_factory, n: int = 2, env: dict | None = None):
    first = ledger_factory(env={**LEADER, "DUET_REPLICA_ID": "replica-0", **(env or {})})
    rest = [
        ledger_factory(db_url=first.db_url, env={**LEADER, "DUET_REPLICA_ID": f"replica-{i}", **(env or {})})
        for i in range(1, n)
    ]
    return [first, *rest]


def test_concurrent_claimers_through_two_replicas_each_get_a_different_job(ledger_factory):
    replicas = _replicas(ledger_factory, env={"DUET_WANDB_ENABLED": "false"})
    c = replicas[0].client()
    c.create_run("r")
    n_claimers, per_claimer = 8, 5
    for step in range(n_claimers * per_claimer):
        d = replicas[0].checkpoint_root / f"checkpoint-{step}"
        d.mkdir()
        c.enqueue(EvalSpec(task="arith"), path=str(d), run="r")

    got: dict[str, list] = {}
    start = threading.Barrier(n_claimers)

    def claimer(i: int) -> None:
        with replicas[i % 2].client() as client:
            start.wait()
            got[f"w{i}"] = [client.claim(f"w{i}") for _ in range(per_claimer)]

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(n_claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    leases = [lease for claims in got.values() for lease in claims]
    assert len(leases) == n_claimers * per_claimer
    assert None not in leases, "a claimer got nothing while jobs were queued"
    assert len({lease.job.id for lease in leases}) == len(leases), "two claimers got the same job"
    assert c.claim("late") is None  # the queue is empty now


def _ingest(ledger, run_id: int, steps: range) -> None:
    rows = [TrainMetricRow(step=s, key="train/loss", value=float(s)) for s in steps]
    with ledger.client() as c:
        c.log_train_metrics(run_id, rows)


def _drainer(ledger) -> str | None:
    rows = ledger.sql("select holder from leader_leases where name = 'wandb-drain'")
    return rows[0][0] if rows else None


def test_one_replica_drains_wandb_and_the_other_takes_over_when_it_is_killed(ledger_factory):
    a, b = _replicas(ledger_factory)
    run = a.client().create_run("r")
    _ingest(a, run.id, range(0, 20))
    _ingest(b, run.id, range(20, 40))
    wait_for(lambda: a.sql("select count(*) from wandb_outbox where sent_at is null") == [(0,)], what="drain")
    holder = _drainer(a)
    assert holder in ("replica-0", "replica-1")
    leader, other = (a, b) if holder == "replica-0" else (b, a)
    assert not (other.wandb_dir.exists() and any(other.wandb_dir.rglob("*.wandb"))), "both replicas wrote W&B"

    leader.kill(signal.SIGKILL)
    _ingest(other, run.id, range(40, 60))
    wait_for(lambda: _drainer(other) != holder, what="the drain lease to move")
    wait_for(
        lambda: other.sql("select count(*) from wandb_outbox where sent_at is null") == [(0,)],
        what="takeover drain",
    )
    assert other.flush_wandb() == 0

    steps = Counter()
    for replica in (a, b):
        if replica.wandb_dir.exists() and any(replica.wandb_dir.rglob("*.wandb")):
            steps.update(
                h["train/global_step"] for h in read_offline_history(replica.wandb_dir, run.wandb_run_id)
            )
    assert sorted(steps) == list(range(60)), "rows lost"
    assert set(steps.values()) == {1}, f"rows logged twice: {[s for s, n in steps.items() if n > 1]}"
