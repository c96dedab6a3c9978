"""Background sender of run registration, train metrics and checkpoints to the ledger.

The training loop only puts items on a queue. A daemon thread writes them to a durable spool
(shared.spool) first, then replays the spool in order to the ledger and acks what it accepted.
If the ledger is down the records stay in the spool (also across a crash or restart of the
trainer: a later `duet train` / `duet train-sync` with the same output dir sends them). Replays
are harmless: runs are idempotent by name, metrics by (run, step, key), checkpoints by (run, step).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.client import AuthError, LedgerClient, LedgerError, LedgerUnavailable
from shared.config import ClientSettings
from shared.schemas import CheckpointCreate, TrainMetricRow
from shared.spool import Spool, SpoolRecord

log = logging.getLogger("duet.trainer")

MAX_ROWS_PER_POST = 5000


@dataclass
class ReportSummary:
    sent: int  # spool records the ledger accepted during this reporter's life
    pending: int  # records still in the spool (ledger unreachable)
    spool_path: Path
    run_id: int | None


class Reporter:
    """Owns the spool and the sender thread. Call `start()`, then `log`/`checkpoint`, then `close()`."""

    def __init__(
        self,
        spool_path: Path,
        *,
        settings: ClientSettings | None,
        retry_interval_s: float = 2.0,
    ):
        self.spool_path = Path(spool_path)
        self._spool = Spool(self.spool_path)
        self._settings = settings  # None: spool only, never send (reporting disabled or offline)
        self._retry_interval_s = retry_interval_s
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: LedgerClient | None = None
        self._run_ids: dict[str, int] = {}
        self._sent = 0
        self._warned_down = False
        self._auth_failed = False
        self._deadline: float | None = None

    # --- producer side (training loop) ---------------------------------------------------------

    def register_run(self, name: str, **kwargs: Any) -> None:
        self._put("run", {"name": name, **kwargs})

    def log(self, run: str, step: int, metrics: dict[str, float]) -> None:
        rows = [{"step": step, "key": k, "value": v} for k, v in metrics.items()]
        if rows:
            self._put("metrics", {"run": run, "rows": rows})

    def checkpoint(
        self,
        run: str,
        step: int,
        path: Path,
        kind: str,
        fingerprint: str | None,
        algorithm: str | None = None,
    ) -> None:
        payload = {"run": run, "step": step, "path": str(path), "kind": kind, "fingerprint": fingerprint,
                   "algorithm": algorithm}  # fmt: skip
        self._put("checkpoint", payload)

    def call(self, fn: Callable[[LedgerClient], None]) -> None:
        """Run `fn(client)` on the sender thread once everything queued before it was sent."""
        self._queue.put(("call", fn))
        self._wake.set()

    def _put(self, kind: str, payload: dict[str, Any]) -> None:
        self._queue.put((kind, payload))
        self._wake.set()

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Reporter:
        self._thread = threading.Thread(target=self._loop, name="duet-reporter", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> ReportSummary:
        """Try to send everything for up to `timeout` seconds; what is left stays in the spool."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 5)
        pending = len(self._spool)
        summary = ReportSummary(
            self._sent, pending, self.spool_path, next(iter(self._run_ids.values()), None)
        )
        self._spool.close()
        if self._client is not None:
            self._client.close()
        return summary

    # --- sender thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._retry_interval_s)
            self._wake.clear()
            try:
                calls = self._spool_queued()
                ok = self._drain()
            except Exception:  # never let the sender die: records stay spooled, next round retries
                log.exception("reporter error; records stay in %s", self.spool_path)
                calls, ok = [], False
            if ok:
                for fn in calls:
                    self._run_call(fn)
            if self._stop.is_set():
                hopeless = self._get_client() is None
                if (ok and self._queue.empty()) or hopeless or time.monotonic() >= (self._deadline or 0):
                    self._spool_queued()  # nothing queued may be lost, even when giving up on sending
                    return

    def _spool_queued(self) -> list[Callable[[LedgerClient], None]]:
        calls = []
        while True:
            try:
                kind, payload = self._queue.get_nowait()
            except queue.Empty:
                return calls
            if kind == "call":
                calls.append(payload)
            else:
                self._spool.append(kind, payload)

    def _get_client(self) -> LedgerClient | None:
        if self._settings is None or self._auth_failed:
            return None
        if self._client is None:
            # Short retries here: this thread does its own retrying and must stay responsive to close().
            self._client = LedgerClient(settings=self._settings, retry_for_s=1.0, timeout=10.0)
        return self._client

    def _drain(self) -> bool:
        """Send the spool in order. True when it is empty (all sent)."""
        client = self._get_client()
        if client is None:
            return False
        try:
            pending = self._spool.pending()
            i = 0
            while i < len(pending):
                rec = pending[i]
                if rec.kind == "metrics":
                    batch = [rec]
                    while (
                        i + len(batch) < len(pending)
                        and pending[i + len(batch)].kind == "metrics"
                        and pending[i + len(batch)].payload["run"] == rec.payload["run"]
                        and sum(len(r.payload["rows"]) for r in batch) < MAX_ROWS_PER_POST
                    ):
                        batch.append(pending[i + len(batch)])
                    self._send_metrics(client, batch)
                    i += len(batch)
                else:
                    self._send_one(client, rec)
                    i += 1
        except LedgerUnavailable as e:
            if not self._warned_down:
                log.warning(
                    "ledger unreachable (%s); train metrics are kept in %s and sent when it is back",
                    e,
                    self.spool_path,
                )
                self._warned_down = True
            return False
        except AuthError as e:
            self._auth_failed = True
            log.error(
                "ledger refused the token (%s); nothing more is sent, records stay in %s", e, self.spool_path
            )
            return False
        if self._warned_down:
            log.warning("ledger reachable again; spooled records sent")
            self._warned_down = False
        return True

    def _resolve_run(self, client: LedgerClient, name: str, spec: dict[str, Any] | None = None) -> int:
        if name not in self._run_ids:
            kwargs = {k: v for k, v in (spec or {}).items() if k != "name"}
            self._run_ids[name] = client.create_run(name, **kwargs).id  # idempotent by name
        return self._run_ids[name]

    def _send_metrics(self, client: LedgerClient, batch: list[SpoolRecord]) -> None:
        rows = [TrainMetricRow(**r) for rec in batch for r in rec.payload["rows"]]
        try:
            client.log_train_metrics(self._resolve_run(client, batch[0].payload["run"]), rows)
        except (LedgerUnavailable, AuthError):  # not the rows' fault: they stay spooled
            raise
        except LedgerError as e:  # the server will never take these rows: say so, do not block the rest
            log.error("ledger rejected %d train-metric rows (%s); dropped", len(rows), e)
        for rec in batch:
            self._spool.ack(rec.id)
            self._sent += 1

    def _send_one(self, client: LedgerClient, rec: SpoolRecord) -> None:
        p = rec.payload
        try:
            if rec.kind == "run":
                self._run_ids.pop(p["name"], None)
                self._resolve_run(client, p["name"], p)
            elif rec.kind == "checkpoint":
                run_id = self._resolve_run(client, p["run"])
                client.register_checkpoint(
                    CheckpointCreate(
                        run_id=run_id,
                        step=p["step"],
                        path=p["path"],
                        kind=p["kind"],
                        fingerprint=p["fingerprint"],
                        algorithm=p.get("algorithm"),  # spools written before stages lack it
                    )
                )
            else:
                log.error("unknown spool record kind %r; dropped", rec.kind)
        except (LedgerUnavailable, AuthError):
            raise
        except LedgerError as e:
            log.error("ledger rejected %s record %s (%s); dropped", rec.kind, p, e)
        self._spool.ack(rec.id)
        self._sent += 1

    def _run_call(self, fn: Callable[[LedgerClient], None]) -> None:
        client = self._get_client()
        if client is None:
            return
        try:
            fn(client)
        except LedgerUnavailable as e:
            log.warning("ledger unreachable during %s: %s", getattr(fn, "__name__", "call"), e)
        except Exception:  # a retention bug must never kill the sender thread
            log.exception("background call %s failed", getattr(fn, "__name__", fn))
