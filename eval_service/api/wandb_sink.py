"""The W&B outbox drainer: the ledger is the only process that writes to W&B.

Data routes write `wandb_outbox` rows in the same transaction as the data. A background thread logs
pending rows to the ledger run's W&B run (one W&B run id per ledger run, resumed with
`resume="allow"`) and marks rows sent only once W&B holds them. When W&B raises, the rows stay
pending and are retried later into the same run id: nothing is lost; a row is logged twice only if
the process dies between W&B taking a batch and the mark (at-least-once at that single point).
Each batch ends with `finish()` (W&B then holds every row of it) before its rows are marked sent.

With several API replicas on one database, only the holder of the `wandb-drain` leader lease
drains; it renews the lease before every batch, and when it dies the lease runs out
(DUET_LEADER_LEASE_S) and another replica's next round takes over from the first unsent row.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from eval_service.api.crud import leader, outbox
from eval_service.api.crud.leader import LeaderJob
from eval_service.api.models import Run

log = logging.getLogger("duet.wandb")


class WandbSink:
    def __init__(self, settings: ServerSettings, db: Database, replica: str | None = None):
        self.settings, self.db = settings, db
        self.replica = replica or leader.replica_name(settings.replica_id)
        self._runs: dict[int, Any] = {}  # ledger run id -> open wandb Run
        self._entries: dict[int, set[str]] = {}  # id(open wandb Run) -> entries with define_metric done
        self._lock = threading.Lock()  # one drain at a time (thread vs. flush route)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._keeper: threading.Thread | None = None
        self._holding = False  # we hold the drain lease (renewed by the keeper thread)
        self.last_error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.settings.wandb_enabled:
            return
        os.environ.setdefault("WANDB_MODE", "offline")
        self._thread = threading.Thread(target=self._loop, name="duet-wandb-outbox", daemon=True)
        self._thread.start()
        self._keeper = threading.Thread(target=self._keep_lease, name="duet-wandb-lease", daemon=True)
        self._keeper.start()

    def stop(self) -> None:
        """Drain what is pending, then close every run so its files are complete."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self.flush()
            if self._keeper is not None:
                self._keeper.join(timeout=10)
            with self.db.write() as session:  # let another replica take over at once
                leader.release(session, LeaderJob.wandb_drain, self.replica)
            self._holding = False

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

    def _keep_lease(self) -> None:
        """Renew the drain lease while we hold it, also while a batch is stuck inside W&B (a first
        `wandb.init` can take longer than the lease): only a dead or frozen replica loses it."""
        while not self._stop.wait(self.settings.leader_lease_s / 3):
            if self._holding:
                try:
                    self._lead(renew_only=True)
                except Exception:
                    log.exception("renewing the W&B drain lease failed")

    def _lead(self, renew_only: bool = False) -> bool:
        """Take or renew the drain lease; on losing it, close our runs (the new leader resumes them)."""
        with self.db.write() as session:
            held = leader.acquire(session, LeaderJob.wandb_drain, self.replica, self.settings.leader_lease_s)
        self._holding = held
        if renew_only:
            return held
        if not held and self._runs:
            log.info("another replica drains the W&B outbox now")
            self._finish_all(quiet=True)
        return held

    def _drain_batch(self) -> bool:
        """Log one batch of pending rows; True when it made progress and more may be pending.
        Does nothing while another replica holds the drain lease."""
        if not self._lead():
            return False
        with self.db.read() as session:
            rows = outbox.next_batch(session, self.settings.wandb_batch_size)
            runs = {r.run_id: session.get(Run, r.run_id) for r in rows}
        if not rows:
            return False
        logged: list[int] = []
        # An outbox row holds one W&B row or (an ingest batch) several; when W&B fails inside a
        # batch, the rows it took are dropped from the payload and only the rest stay pending.
        partial: tuple[int, list[dict[str, Any]]] | None = None
        try:
            for row in rows:
                wb = self._run(runs[row.run_id])
                wb_rows = outbox.payload_rows(row.payload)
                for i, wb_row in enumerate(wb_rows):
                    partial = (row.id, wb_rows[i:]) if i else None
                    self._define_entries(wb, wb_row)
                    wb.log(dict(wb_row))  # train/global_step is inside; never step=
                partial = None
                logged.append(row.id)
            self.last_error = None
        except Exception as e:  # W&B outage: keep the rest pending, reopen the run next time
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("W&B log failed, %d outbox rows stay pending: %s", len(rows) - len(logged), e)
        # `log` only hands rows to W&B's service process, which buffers them: a replica killed
        # now would lose rows already marked sent. finish() returns once W&B holds them (the next
        # batch resumes the run), so rows are marked sent only then; if it fails they stay pending.
        if self._finish_all(quiet=self.last_error is not None):
            with self.db.write() as session:
                outbox.mark_sent(session, logged)
                if partial is not None:
                    outbox.keep_unsent(session, *partial)
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

    def _define_entries(self, wb: Any, payload: dict[str, Any]) -> None:
        """Each suite entry's `eval/<entry>/*` metrics against `train/global_step`, declared once per
        W&B run, so every entry is its own panel group plotted over training steps."""
        defined = self._entries.setdefault(id(wb), set())
        for key in payload:
            parts = key.split("/")
            if len(parts) >= 3 and parts[0] == "eval" and parts[1] not in defined:
                wb.define_metric(f"eval/{parts[1]}/*", step_metric="train/global_step")
                defined.add(parts[1])

    def _finish_all(self, quiet: bool = False) -> bool:
        """Finish every open run; True when all finished (W&B holds what was logged to them)."""
        ok = True
        for run_id, wb in list(self._runs.items()):
            try:
                wb.finish()
            except Exception as e:
                ok = False
                self.last_error = self.last_error or f"{type(e).__name__}: {e}"
                if not quiet:
                    log.warning("W&B finish failed for run %s: %s", run_id, e)
            self._runs.pop(run_id, None)
            self._entries.pop(id(wb), None)
        return ok
