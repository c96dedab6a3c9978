"""The ledger as the single W&B writer: offline runs read back from their `.wandb` files."""

from __future__ import annotations

from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from eval_service.api.crud import runs
from eval_service.api.wandb_sink import WandbSink
from shared.schemas import CompleteRequest, EvalSpec, RunCreate, TrainMetricRow, TrainMetricsBatch
from tests.fixtures.wandb_files import read_offline_history, run_files


def test_train_and_eval_rows_land_in_the_runs_offline_file(ledger):
    c = ledger.client()
    run = c.create_run("wb", primary_task="arith")
    c.log_train_metrics(
        run.id, [TrainMetricRow(step=s, key="train/loss", value=2.0 - s / 10) for s in (1, 2, 3)]
    )
    d = ledger.checkpoint_root / "checkpoint-3"
    d.mkdir()
    for task, acc in (("arith", 0.4), ("gsm8k", 0.1)):
        c.enqueue(EvalSpec(task=task), path=str(d), run="wb")
        lease = c.claim("w")
        c.complete(
            lease.job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": acc})
        )
    c.log_train_metrics(
        run.id, [TrainMetricRow(step=3, key="train/loss", value=9.9)]
    )  # duplicate: not logged
    assert ledger.flush_wandb() == 0

    history = read_offline_history(ledger.wandb_dir, run.wandb_run_id)
    train = [h for h in history if "train/loss" in h]
    assert [(h["train/global_step"], h["train/loss"]) for h in train] == [(1, 1.9), (2, 1.8), (3, 1.7)]
    evals = [h for h in history if any(k.startswith("eval/") for k in h)]
    assert {"train/global_step": 3, "eval/accuracy": 0.4}.items() <= evals[0].items()
    assert {"train/global_step": 3, "eval/gsm8k/accuracy": 0.1}.items() <= evals[1].items()
    assert len(evals) == 2


def _ingest(db: Database, run_id: int, steps: range) -> None:
    with db.write() as session:
        rows = [TrainMetricRow(step=st, key="train/loss", value=float(st)) for st in steps]
        runs.ingest_train_metrics(session, TrainMetricsBatch(run_id=run_id, rows=rows))


def test_wandb_outage_keeps_rows_pending_then_drains_into_the_same_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    settings = ServerSettings(db_url=f"sqlite:///{tmp_path / 'l.db'}", wandb_dir=tmp_path / "wandb")
    settings.wandb_dir.mkdir()
    db = Database(settings)
    db.create_all()
    sink = WandbSink(settings, db)  # driven synchronously through flush(); no thread started
    with db.write() as session:
        run = runs.create_run(session, RunCreate(name="outage"))
    _ingest(db, run.id, range(0, 3))
    assert sink.flush() == 0

    import wandb.sdk.wandb_run as wandb_run

    real_log = wandb_run.Run.log
    calls = {"n": 0}

    def flaky_log(self, data, *a, **kw):  # W&B goes down after two more rows
        calls["n"] += 1
        if calls["n"] > 2:
            raise ConnectionError("wandb backend unreachable")
        return real_log(self, data, *a, **kw)

    monkeypatch.setattr(wandb_run.Run, "log", flaky_log)
    _ingest(db, run.id, range(3, 10))
    assert sink.flush() == 5  # two logged before the outage, five still pending
    assert "unreachable" in (sink.last_error or "")
    assert sink.flush() == 5  # still down: still pending, nothing dropped

    monkeypatch.setattr(wandb_run.Run, "log", real_log)  # recovery
    _ingest(db, run.id, range(10, 12))
    assert sink.flush() == 0 and sink.last_error is None
    db.dispose()

    history = read_offline_history(settings.wandb_dir, run.wandb_run_id)
    steps = [h["train/global_step"] for h in history if "train/loss" in h]
    assert steps == list(range(12))  # every row, once, in order
    assert len(run_files(settings.wandb_dir, run.wandb_run_id)) >= 2  # resumed under the same id


def test_first_evaluated_task_is_primary_when_the_run_names_none(ledger):
    c = ledger.client()
    run = c.create_run("noprimary")
    d = ledger.checkpoint_root / "checkpoint-1"
    d.mkdir()
    for task in ("gsm8k", "arith"):
        c.enqueue(EvalSpec(task=task), path=str(d), run=run.name)
        lease = c.claim("w")
        c.complete(
            lease.job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": 0.5})
        )
    assert ledger.flush_wandb() == 0
    keys = [
        k
        for h in read_offline_history(ledger.wandb_dir, run.wandb_run_id)
        for k in h
        if k.startswith("eval/")
    ]
    # every task under its own name; the first evaluated one also keeps the flat headline names
    assert sorted(keys) == ["eval/accuracy", "eval/arith/accuracy", "eval/gsm8k/accuracy"]
