"""The ledger SIGKILLed again and again while a trainer's reporter (real client + durable spool)
streams batched train metrics: the database stays intact and every row is stored exactly once."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from shared.config import ClientSettings
from trainer_service.reporter import Reporter

pytestmark = pytest.mark.slow

STEPS, KEYS, KILLS = 1000, 25, 5
STEP_S = 0.01  # a (very fast) training step: the stream lasts through every kill


@pytest.fixture
def ledger_backend() -> str:
    return "sqlite"  # PRAGMA integrity_check; SQLite is where a torn write would show


def _rows(ledger) -> int:
    return ledger.sql("select count(*) from train_metrics")[0][0] if ledger.running else -1


def _grows_past(ledger, n: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _rows(ledger)
        if now > n:
            return now
        time.sleep(0.05)  # poll interval, not synchronisation
    raise AssertionError(f"no new rows past {n} in {timeout}s:\n{ledger.log_tail()}")


def test_repeated_sigkill_during_ingest_keeps_every_row_once(ledger, tmp_path):
    settings = ClientSettings(api_url=ledger.url, api_token=ledger.token, timeout_s=5)
    reporter = Reporter(tmp_path / "spool.db", settings=settings, retry_interval_s=0.2).start()
    reporter.register_run("kill-run")

    def train() -> None:  # the training loop: never blocks on the ledger
        for step in range(STEPS):
            reporter.log("kill-run", step, {f"train/k{k}": step + k / 100 for k in range(KEYS)})
            time.sleep(STEP_S)  # the step's compute, not synchronisation

    trainer = threading.Thread(target=train)
    trainer.start()
    seen = 0
    for _ in range(KILLS):
        seen = _grows_past(ledger, seen)  # mid-ingest: rows are arriving
        ledger.kill(signal.SIGKILL)
        ledger.start()
    trainer.join()
    summary = reporter.close(timeout=120)
    assert summary.pending == 0
    ledger.stop()
    assert ledger.sql("PRAGMA integrity_check") == [("ok",)]
    assert ledger.sql("select count(*), count(distinct step || ':' || key) from train_metrics") == [
        (STEPS * KEYS, STEPS * KEYS)
    ]
    assert ledger.sql("select value from train_metrics where step = 123 and key = 'train/k7'") == [(123.07,)]
