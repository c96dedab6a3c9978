"""A run for retention tests: published checkpoint dirs in a trainer output dir, registered in a real
ledger, and a stand-in worker that claims and finishes jobs with chosen metrics (the lease protocol
over HTTP, no model: retention only reads what the ledger knows)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.checkpoint import write_marker
from shared.client import LedgerClient
from shared.schemas import CheckpointCreate, CompleteRequest, EvalSpec
from shared.suite import Suite, checkpoint_ordinals, parse_suite


def publish(out: Path, run: str, step: int, *, max_steps: int) -> Path:
    """A checkpoint dir as the trainer leaves it: weights, trainer_state.json and the duet marker."""
    d = out / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(step.to_bytes(8, "little"))
    (d / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))
    write_marker(d, run=run, step=step, kind="full")
    return d


def two_entry_suite(path: Path) -> Suite:
    """`main` on every checkpoint, `probe` on every 2nd (and on the baseline and the final one)."""
    data = {
        "entries": [
            {"name": "main", "task": "ones_digit", "limit": 5},
            {"name": "probe", "task": "ones_digit", "limit": 3, "every": 2},
        ]
    }
    path.write_text(json.dumps(data))  # JSON is YAML
    return parse_suite(data, str(path))


class Run:
    """One run in the ledger with published checkpoints in `out`."""

    def __init__(self, client: LedgerClient, out: Path, name: str, steps: list[int]):
        self.client, self.out, self.name = client, out, name
        self.run = client.create_run(name, primary_task="main")
        self.dirs = {s: publish(out, name, s, max_steps=max(steps)) for s in steps}
        self.ids = {
            s: client.register_checkpoint(CheckpointCreate(run_id=self.run.id, step=s, path=str(d))).id
            for s, d in self.dirs.items()
        }

    def enqueue_due(self, suite: Suite) -> None:
        """What the watcher queues: each entry due by cadence (all of them on the last checkpoint)."""
        ordinals = checkpoint_ordinals(list(self.dirs))
        last = max(self.dirs)
        for step, ckpt_id in self.ids.items():
            for entry in suite.due_entries(ordinals[step], final=step == last):
                self.client.enqueue(entry.spec(), checkpoint_id=ckpt_id)

    def work(self, accuracy: dict[tuple[str, int], float], default: float = 0.5) -> int:
        """Claim and complete every queued job; `accuracy[(entry, step)]` is its metric. Returns
        how many jobs were finished."""
        n = 0
        while (lease := self.client.claim("w-ret")) is not None:
            acc = accuracy.get((lease.job.spec.result_name, lease.job.step), default)
            body = CompleteRequest(worker_id="w-ret", attempt=lease.attempt, metrics={"accuracy": acc})
            self.client.complete(lease.job.id, body)
            n += 1
        return n


def spec(name: str, limit: int = 5) -> EvalSpec:
    return EvalSpec(task="ones_digit", name=name, limit=limit)
