"""duet's retention against a real ledger (SQLite and PostgreSQL): the trainer deletes only what
the ledger granted, a job can never land on a checkpoint being deleted, keep_best ranks by the
named suite entry, and pinned, baseline and final checkpoints survive."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shared.checkpoint import published_checkpoints
from shared.client import LedgerError, error_detail
from shared.retention import RetentionCandidate
from shared.schemas import CheckpointRead, CheckpointState
from tests.trainer_service.retention_scenario import Run, publish, spec, two_entry_suite
from trainer_service.config import RetentionSettings
from trainer_service.retention import RetentionHooks, apply_retention, plan_retention


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _states(client, run: str) -> dict[int, CheckpointRead]:
    return {c.step: c for c in client.list_checkpoints(run)}


def _active_jobs_on_taken_checkpoints(ledger) -> list[tuple]:
    return ledger.sql(
        "select j.id, c.step, c.state from eval_jobs j join checkpoints c on c.id = j.checkpoint_id "
        "where j.status in ('queued', 'leased') and c.state != 'present'"
    )


def test_enqueues_interleaved_with_retention_never_reach_a_deleted_checkpoint(ledger):
    client = ledger.client()
    out = ledger.checkpoint_root / "out"
    run = Run(client, out, "t-race", [10, 20, 30, 40, 50])
    for step in run.ids.values():
        client.enqueue(spec("ones_digit"), checkpoint_id=step)
    assert run.work({}) == 5  # every checkpoint scored: all but the last are candidates

    late: dict[str, int] = {}
    refusals: dict[int, str] = {}
    jobs_at_grant: set[int] = set()

    def after_plan(candidates: list[RetentionCandidate]) -> None:
        # The old race: a job queued after retention looked, before it deletes.
        assert {c.checkpoint_id for c in candidates} == {run.ids[s] for s in (10, 20, 30, 40)}
        late["job"] = client.enqueue(spec("ones_digit", limit=3), checkpoint_id=run.ids[20]).job.id

    def after_grant(granted: list[CheckpointRead]) -> None:
        jobs_at_grant.update(j.id for j in client.list_jobs(run=run.name))
        for ck in granted:  # granted, files still there: every enqueue is refused, and says why
            assert ck.state == CheckpointState.deleting and Path(ck.path).is_dir()
            with pytest.raises(LedgerError) as e:
                client.enqueue(spec("ones_digit", limit=7), checkpoint_id=ck.id)
            assert e.value.status == 409
            refusals[ck.step] = error_detail(e.value)
            with pytest.raises(LedgerError, match="is being deleted by retention"):  # by path too
                client.enqueue(spec("ones_digit", limit=8), path=ck.path)

    policy = RetentionSettings(keep_last=1, keep_best=0)
    hooks = RetentionHooks(after_plan=after_plan, after_grant=after_grant)
    deleted = apply_retention(out, client, run.name, policy, task="ones_digit", hooks=hooks)

    assert sorted(deleted) == [run.dirs[s] for s in (10, 30, 40)]
    assert [s for s, _ in published_checkpoints(out)] == [20, 50]  # 20: the late job holds it
    assert refusals == {
        s: f"checkpoint {run.ids[s]} (step {s}) is being deleted by retention" for s in (10, 30, 40)
    }
    states = _states(client, run.name)
    assert {s: c.state for s, c in states.items()} == {
        10: "deleted", 20: "present", 30: "deleted", 40: "deleted", 50: "present"
    }  # fmt: skip
    assert all(states[s].deleted_at is not None for s in (10, 30, 40))
    assert client.get_job(late["job"]).status == "queued"  # the late job kept its checkpoint
    assert _active_jobs_on_taken_checkpoints(ledger) == []
    taken = {run.ids[s] for s in (10, 30, 40)}
    assert {j.id for j in client.list_jobs(run=run.name) if j.checkpoint_id in taken} <= jobs_at_grant

    # After the deletion the refusal says so; the results stay queryable.
    with pytest.raises(LedgerError, match=r"was deleted by retention at .* UTC; its results stay"):
        client.enqueue(spec("ones_digit", limit=9), checkpoint_id=run.ids[10])
    assert [r.step for r in client.scores(run.name)] == [10, 20, 30, 40, 50]

    # The late job finishes: the next pass may take step 20 too.
    assert run.work({}) == 1
    assert apply_retention(out, client, run.name, policy, task="ones_digit") == [run.dirs[20]]
    assert _active_jobs_on_taken_checkpoints(ledger) == []


def test_two_entry_suite_keeps_best_by_named_entry_and_pinned_baseline_final(ledger, tmp_path: Path):
    client = ledger.client()
    out = ledger.checkpoint_root / "out"
    suite_file = tmp_path / "suite.yaml"
    suite = two_entry_suite(suite_file)
    run = Run(client, out, "t-best", [0, 10, 20, 30, 40, 50])
    run.enqueue_due(suite)  # probe is due on 0, 20, 40 and the final 50
    # main's best is step 10, probe's best is step 20: keep_best must follow the named entry.
    accuracy = {("main", 10): 0.9, ("main", 20): 0.2, ("probe", 20): 0.8, ("probe", 40): 0.3}
    run.work(accuracy, default=0.1)
    client.pin(run.ids[30])

    policy = RetentionSettings(
        keep_last=1, keep_best=1, best_metric="eval/probe/accuracy", best_mode="max", suite=suite_file
    )
    deleted = apply_retention(out, client, run.name, policy, task="ones_digit")

    assert sorted(deleted) == [run.dirs[10], run.dirs[40]]
    # 0: the baseline; 20: best by probe; 30: pinned; 50: final (and last)
    assert [s for s, _ in published_checkpoints(out)] == [0, 20, 30, 50]
    assert {s for s, c in _states(client, run.name).items() if c.state == "deleted"} == {10, 40}

    # Ranking by the headline instead keeps main's best (10 is gone now, so the next best stays).
    client.unpin(run.ids[30])
    by_main = policy.model_copy(update={"best_metric": "eval/main/accuracy", "keep_best": 1})
    assert apply_retention(out, client, run.name, by_main, task="ones_digit") == [run.dirs[30]]
    assert [s for s, _ in published_checkpoints(out)] == [0, 20, 50]  # 20: main's best of the rest


def test_a_pass_that_dies_after_the_grant_is_finished_by_the_next(ledger):
    client = ledger.client()
    out = ledger.checkpoint_root / "out"
    run = Run(client, out, "t-crash", [10, 20, 30])
    for ckpt_id in run.ids.values():
        client.enqueue(spec("ones_digit"), checkpoint_id=ckpt_id)
    run.work({})
    policy = RetentionSettings(keep_last=1, keep_best=0)

    def crash(granted: list[CheckpointRead]) -> None:
        raise KeyboardInterrupt("trainer killed between grant and delete")

    with pytest.raises(KeyboardInterrupt):
        apply_retention(
            out, client, run.name, policy, task="ones_digit", hooks=RetentionHooks(after_grant=crash)
        )
    states = _states(client, run.name)
    assert (states[10].state, states[20].state) == ("deleting", "deleting")
    assert run.dirs[10].is_dir() and run.dirs[20].is_dir()  # granted, not deleted yet
    with pytest.raises(LedgerError, match="is being deleted by retention"):
        client.enqueue(spec("ones_digit", limit=2), checkpoint_id=run.ids[10])

    # The restarted trainer: one dir was removed by hand meanwhile, the other is still there.
    shutil.rmtree(run.dirs[20])
    deleted = apply_retention(out, client, run.name, policy, task="ones_digit")
    assert sorted(deleted) == [run.dirs[10], run.dirs[20]]
    assert not run.dirs[10].exists()
    states = _states(client, run.name)
    assert (states[10].state, states[20].state, states[30].state) == ("deleted", "deleted", "present")
    assert not [p for p in out.iterdir() if p.name.startswith(".deleted")]


def test_ledger_down_deletes_nothing(ledger):
    client = ledger.client()
    out = ledger.checkpoint_root / "out"
    run = Run(client, out, "t-down", [10, 20, 30])
    for ckpt_id in run.ids.values():
        client.enqueue(spec("ones_digit"), checkpoint_id=ckpt_id)
    run.work({})
    ledger.stop()
    down = ledger.client(retry_for_s=0.5)
    policy = RetentionSettings(keep_last=1, keep_best=0)
    assert apply_retention(out, down, run.name, policy, task="ones_digit") == []
    assert [s for s, _ in published_checkpoints(out)] == [10, 20, 30]


def test_plan_keeps_final_baseline_pinned_and_unregistered(tmp_path: Path):
    out = tmp_path / "out"
    # A run resumed with a larger max_steps: checkpoint-40 was the final one of the first stage.
    published = [(s, publish(out, "p", s, max_steps=40 if s <= 40 else 60)) for s in (0, 20, 40, 50, 60)]
    now = "2024-01-01T00:00:00Z"

    def ck(step: int, **kw) -> CheckpointRead:
        return CheckpointRead(
            id=step + 1, run_id=1, step=step, path="x", kind="full", fingerprint=None, created_at=now, **kw
        )

    ledger = {0: ck(0), 20: ck(20, pinned=True), 40: ck(40), 60: ck(60)}  # 50 not registered
    plan = plan_retention(
        published,
        RetentionSettings(keep_last=1, keep_best=0),
        ledger=ledger,
        best=[],
        due=lambda c, p: ["main"],
    )
    assert plan.candidates == []
    assert plan.keep == {
        0: ["step-0 baseline"],
        20: ["pinned"],
        40: ["final checkpoint"],
        50: ["not registered yet"],
        60: ["last", "final checkpoint"],
    }
    assert json.loads((out / "checkpoint-40" / "trainer_state.json").read_text())["max_steps"] == 40
