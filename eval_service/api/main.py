"""The ledger app: `create_app(settings)`; `app` is the default-settings instance for uvicorn."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from eval_service.api.core.limits import BodySizeLimit
from eval_service.api.core.metrics import LedgerMetrics
from eval_service.api.crud import jobs as job_queue
from eval_service.api.crud import leases, outbox
from eval_service.api.errors import LedgerFault
from eval_service.api.routes import admin, jobs, runs, scores, workers
from eval_service.api.wandb_sink import WandbSink

log = logging.getLogger("duet.ledger")


class LeaseSweeper:
    """Re-queues expired leases in the background (claims also do it on the way)."""

    def __init__(self, db: Database, interval_s: float):
        self.db, self.interval_s = db, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="duet-lease-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self.db.write() as session:
                    n = leases.expire_leases(session)
                if n:
                    log.info("re-queued %d expired leases", n)
            except Exception:
                log.exception("lease sweep failed")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    db = Database(settings)
    db.create_all()

    def depth() -> dict[str, int]:
        with db.read() as session:
            return job_queue.queue_depth(session)

    def pending() -> int:
        with db.read() as session:
            return outbox.pending(session)

    sink = WandbSink(settings, db)
    sweeper = LeaseSweeper(db, settings.sweep_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.wandb_dir is not None:
            settings.wandb_dir.mkdir(parents=True, exist_ok=True)
        sink.start()
        sweeper.start()
        try:
            yield
        finally:
            sweeper.stop()
            sink.stop()
            db.dispose()

    app = FastAPI(
        title="duet ledger",
        version="0.1.0",
        description="Runs, checkpoints, the eval job queue, results and train metrics of duet.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.db, app.state.sink = settings, db, sink
    app.state.metrics = LedgerMetrics(depth, pending)

    @app.exception_handler(LedgerFault)
    async def _fault(request: Request, exc: LedgerFault) -> JSONResponse:
        if exc.status == 409:
            app.state.metrics.conflicts.inc()
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    for r in (admin.router, runs.router, jobs.router, workers.router, scores.router):
        app.include_router(r)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn eval_service.api.main:app` builds the app from the environment on first use only.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
