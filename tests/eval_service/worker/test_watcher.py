"""The watcher against a real ledger: completeness rules, restarts, duplicate events, reconcile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eval_service.worker.config import WorkerSettings
from eval_service.worker.main import build_spec
from eval_service.worker.watcher import CheckpointWatcher
from shared.checkpoint import write_marker
from shared.schemas import CheckpointCreate
from tests.eval_service.worker.conftest import make_full, wait_for

RUN = "watch-run"


def _watcher(ledger, root: Path, **kw) -> CheckpointWatcher:
    opts = {"poll": True, "settle_s": 0.05, "rescan_interval_s": 0.2, "limit": 4, **kw}
    s = WorkerSettings(watch=root, run=RUN, **opts)
    client = ledger.client()
    run = client.create_run(RUN)
    return CheckpointWatcher(s, client, run, build_spec(s))


def _steps(ledger) -> list[int]:
    return sorted(c.step for c in ledger.client().list_checkpoints(RUN))


def _jobs(ledger) -> list:
    return ledger.client().list_jobs(run=RUN)


def test_only_complete_checkpoints_are_published(ledger, base_model, tmp_path):
    root = tmp_path / "ckpts"
    make_full(base_model, root / "checkpoint-10", seed=1, run=RUN, step=10)
    # writer killed mid-write: shard cut short, no marker
    part = make_full(base_model, root / "checkpoint-20", seed=2, run=None, step=20)
    with open(part / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    # every file written but the marker never came: in a marker-writing root that is partial too
    make_full(base_model, root / "checkpoint-30", seed=3, run=None, step=30)
    # marker whose listed shard changed size afterwards
    bad = make_full(base_model, root / "checkpoint-40", seed=4, run=RUN, step=40)
    with open(bad / "model.safetensors", "ab") as f:
        f.write(b"x")
    w = _watcher(ledger, root)
    for _ in range(3):
        w.scan()
    assert _steps(ledger) == [10]
    assert len(_jobs(ledger)) == 1


def test_unmarked_hf_checkpoint_needs_two_unchanged_scans(ledger, base_model, tmp_path):
    root = tmp_path / "ckpts"
    ck = make_full(base_model, root / "checkpoint-5", seed=1, run=None, step=5)
    w = _watcher(ledger, root)
    assert w.scan() == []  # first sight: could still be growing
    (ck / "extra.txt").write_text("still writing")
    assert w.scan() == []  # changed since the last scan
    assert w.scan() == [ck]
    assert _steps(ledger) == [5]
    job = _jobs(ledger)[0]
    assert job.checkpoint_kind == "full" and job.spec.task == "ones_digit" and job.spec.limit == 4


def test_checkpoint_written_while_worker_down_is_evaluated_once(ledger, base_model, local_base, tmp_path):
    root = tmp_path / "ckpts"
    make_full(base_model, root / "checkpoint-10", seed=1, run=RUN, step=10)
    first = _watcher(ledger, root, base_model=local_base)
    first.publish_base()
    first.scan()
    # worker down: a new checkpoint lands, and the trainer registers one the watcher never saw
    make_full(base_model, root / "checkpoint-20", seed=2, run=RUN, step=20)
    other = tmp_path / "elsewhere" / "checkpoint-25"
    make_full(base_model, other, seed=5, run=RUN, step=25)
    c = ledger.client()
    c.register_checkpoint(CheckpointCreate(run_id=c.get_run(RUN).id, step=25, path=str(other)))

    second = _watcher(ledger, root, base_model=local_base)  # fresh process state
    second.publish_base()
    second.reconcile()
    second.scan()
    jobs = _jobs(ledger)
    assert sorted(j.step for j in jobs) == [0, 10, 20, 25]
    base_job = next(j for j in jobs if j.step == 0)
    assert base_job.priority > max(j.priority for j in jobs if j.step)
    assert Path(base_job.checkpoint_path) == local_base


def test_file_events_and_duplicates_give_one_job(ledger, base_model, tmp_path):
    root = tmp_path / "ckpts"
    root.mkdir()
    w = _watcher(ledger, root, poll=False, rescan_interval_s=30.0)  # events only, timer far away
    w.start()
    try:
        wait_for(w.first_pass_done.is_set, 20, "first pass")
        tmp = tmp_path / "staging"
        make_full(base_model, tmp, seed=1, run=RUN, step=7)
        shutil.move(tmp, root / "checkpoint-7")
        wait_for(lambda: _steps(ledger) == [7], 20, "the event-driven publish")
        # duplicate and spurious events: marker rewritten, files touched, config rewritten
        scans = w.scans
        write_marker(root / "checkpoint-7", run=RUN, step=7)
        for p in (root / "checkpoint-7").iterdir():
            p.touch()
        cfg = root / "checkpoint-7" / "config.json"
        cfg.write_text(json.dumps(json.loads(cfg.read_text())))
        wait_for(lambda: w.scans >= scans + 1, 20, "a scan after the duplicate events")
        w.reconcile()
    finally:
        w.stop()
    assert len(_jobs(ledger)) == 1


@pytest.mark.parametrize("mode", ["always", "never"])
def test_require_marker_setting(ledger, base_model, tmp_path, mode):
    root = tmp_path / "ckpts"
    make_full(base_model, root / "checkpoint-3", seed=1, run=None, step=3)
    w = _watcher(ledger, root, require_marker=mode)
    w.scan()
    w.scan()
    assert _steps(ledger) == ([] if mode == "always" else [3])
