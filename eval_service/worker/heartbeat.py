"""The lease heartbeat a job runs under: it extends the lease from a background thread until the
job ends, and tells the runner when the ledger has given the job to someone else."""

from __future__ import annotations

import logging
import threading

from shared.client import DuetClientError, LedgerClient, LedgerError, StaleAttempt
from shared.schemas import Lease

log = logging.getLogger("duet.worker.runner")


class Heartbeat:
    """Extends the lease from a background thread; `lost` is set when the ledger says it moved on."""

    def __init__(self, client: LedgerClient, lease: Lease, lease_seconds: float):
        self.client, self.lease, self.lease_seconds = client, lease, lease_seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="duet-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self.client.heartbeat(self.lease, self.lease_seconds)
            except StaleAttempt:
                log.warning("job %d: lease lost (stale attempt); abandoning", self.lease.job.id)
                self.lost.set()
                return
            except DuetClientError as e:
                if isinstance(e, LedgerError) and 400 <= e.status < 500:  # cancelled or gone
                    log.warning("job %d: heartbeat refused (%s); abandoning", self.lease.job.id, e)
                    self.lost.set()
                    return
                log.warning("job %d: heartbeat failed: %s", self.lease.job.id, e)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
