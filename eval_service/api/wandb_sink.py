"""The W&B outbox drainer: the ledger is the only process that writes to W&B.

Data routes write `wandb_outbox` rows in the same transaction as the data. A background thread logs
pending rows to the ledger run's W&B run (one W&B run id per ledger run, resumed with
`resume="allow"`) and marks a row sent only after `log` returned. When W&B raises, the rows stay
pending and are retried later into the same run id: nothing is lost; a row is logged twice only if
the process dies between `log` and the mark (at-least-once at that single point).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from eval_service.api.crud import outbox
from eval_service.api.models import Run

log = logging.getLogger("duet.wandb")


class WandbSink:
    def __init__(self, settings: ServerSettings, db: Database):
        self.settings, self.db = settings, db
        self._runs: dict[int, Any] = {}  # ledger run id -> open wandb Run
        self._lock = threading.Lock()  # one drain at a time (thread vs. flush route)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.settings.wandb_enabled:
            return
        os.environ.setdefault("WANDB_MODE", "offline")
        self._thread = threading.Thread(target=self._loop, name="duet-wandb-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Drain what is pending, then close every run so its files are complete."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self.flush()

    def notify(self) -> None:
        self._wake.set()

    def flush(self) -> int:
        """Drain synchronously and finish open runs; returns the rows still pending."""
        if self.settings.wandb_enabled:
            with self._lock:
                while self._drain_batch():
                    pass
                self._finish_all()
        with self.db.read() as session:
            return outbox.pending(session)

    # --- draining -------------------------------------------------------------------------------

    def _loop(self) -> None:
        backoff = self.settings.wandb_drain_interval_s
        while not self._stop.is_set():
            self._wake.wait(timeout=backoff)
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._lock:
                try:
                    while self._drain_batch():
                        pass
                    backoff = self.settings.wandb_drain_interval_s
                except Exception:  # never let the thread die; the rows stay pending
                    log.exception("W&B outbox drain crashed")
                    backoff = min(backoff * 2, 60.0)
            if self.last_error is not None:
                backoff = min(backoff * 2, 60.0)

    def _drain_batch(self) -> bool:
        """Log one batch of pending rows; True when it made progress and more may be pending."""
        with self.db.read() as session:
            rows = outbox.next_batch(session, self.settings.wandb_batch_size)
            runs = {r.run_id: session.get(Run, r.run_id) for r in rows}
        if not rows:
            return False
        sent: list[int] = []
        try:
            for row in rows:
                wb = self._run(runs[row.run_id])
                wb.log(dict(row.payload))  # train/global_step is inside; never step=
                sent.append(row.id)
            self.last_error = None
        except Exception as e:  # W&B outage: keep the rest pending, reopen the run next time
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("W&B log failed, %d rows stay pending: %s", len(rows) - len(sent), e)
            self._finish_all(quiet=True)
        finally:
            with self.db.write() as session:
                outbox.mark_sent(session, sent)
        return self.last_error is None and len(rows) == self.settings.wandb_batch_size

    def _run(self, run: Run) -> Any:
        wb = self._runs.get(run.id)
        if wb is not None:
            return wb
        import wandb

        wb = wandb.init(
            id=run.wandb_run_id,
            resume="allow",
            project=self.settings.wandb_project,
            entity=self.settings.wandb_entity,
            name=run.name,
            config=run.config or {},
            dir=str(self.settings.wandb_dir) if self.settings.wandb_dir else None,
            reinit="create_new",
            settings=wandb.Settings(
                console="off", silent=True, x_disable_stats=True, x_save_requirements=False
            ),
        )
        wb.define_metric("train/global_step")
        wb.define_metric("train/*", step_metric="train/global_step")
        wb.define_metric("eval/*", step_metric="train/global_step")
        self._runs[run.id] = wb
        return wb

    def _finish_all(self, quiet: bool = False) -> None:
        for run_id, wb in list(self._runs.items()):
            try:
                wb.finish()
            except Exception as e:
                if not quiet:
                    log.warning("W&B finish failed for run %s: %s", run_id, e)
            self._runs.pop(run_id, None)
