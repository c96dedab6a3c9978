"""The ledger app: `create_app(settings)`; `app` is the default-settings instance for uvicorn."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database
from eval_service.api.core.limits import BodySizeLimit
from eval_service.api.core.metrics import LedgerMetrics
from eval_service.api.crud import jobs as job_queue
from eval_service.api.crud import leader, leases, outbox
from eval_service.api.crud.leader import LeaderJob
from eval_service.api.errors import LedgerFault
from eval_service.api.responses import errors
from eval_service.api.routes import admin, analysis, docs, jobs, retention, runs, scores, workers
from eval_service.api.ui import ui_router
from eval_service.api.wandb_sink import WandbSink

log = logging.getLogger("duet.ledger")


class LeaseSweeper:
    """Re-queues expired leases in the background (claims also do it on the way). With several
    replicas on one database only the holder of the lease-sweep leader lease sweeps."""

    def __init__(self, db: Database, interval_s: float, replica: str, leader_lease_s: float):
        self.db, self.interval_s = db, interval_s
        self.replica, self.leader_lease_s = replica, leader_lease_s
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
                    if not leader.acquire(session, LeaderJob.lease_sweep, self.replica, self.leader_lease_s):
                        continue
                    n = leases.expire_leases(session)
                if n:
                    log.info("re-queued %d expired leases", n)
            except Exception:
                log.exception("lease sweep failed")


def _printable(loc: int | str) -> int | str:
    """A location part that JSON can carry: a bad dict key may itself be a lone surrogate."""
    return loc if isinstance(loc, int) else loc.encode("utf-8", "backslashreplace").decode("utf-8")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    db = Database(settings)
    db.migrate()  # raises migrate.DatabaseTooNew before anything is served
    replica = leader.replica_name(settings.replica_id)

    def depth() -> dict[str, int]:
        with db.read() as session:
            return job_queue.queue_depth(session)

    def pending() -> int:
        with db.read() as session:
            return outbox.pending(session)

    sink = WandbSink(settings, db, replica)
    sweeper = LeaseSweeper(db, settings.sweep_interval_s, replica, settings.leader_lease_s)

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

    # With read auth on, the API description is read-protected too (unless DUET_PUBLIC_DOCS).
    protect_docs = settings.read_auth and not settings.public_docs
    app = FastAPI(
        openapi_url=None if protect_docs else "/openapi.json",
        docs_url=None if protect_docs else "/docs",
        redoc_url=None if protect_docs else "/redoc",
        title="duet ledger",
        version="0.1.0",
        description="Runs, checkpoints, the eval job queue, results and train metrics of duet.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.db, app.state.sink = settings, db, sink
    app.state.replica = replica
    app.state.metrics = LedgerMetrics(depth, pending)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes each bad `input`: a lone surrogate or a NaN there cannot be
        # encoded as JSON, which turned a 422 into a 500. Field, message and type say enough.
        detail = [
            {"loc": [_printable(x) for x in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(LedgerFault)
    async def _fault(request: Request, exc: LedgerFault) -> JSONResponse:
        if exc.status == 409:
            app.state.metrics.conflicts.inc()
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    app.include_router(admin.router)
    # Every /v1 route takes a token (401), names a run or job (404) and validates its input (422);
    # each router adds what else its routes answer, so the OpenAPI document lists every status.
    for r in (runs.router, jobs.router, workers.router, scores.router, analysis.router):
        app.include_router(r, responses=errors(401, 404, 422))
    app.include_router(retention.router)  # its router lists 401/404/422 itself
    if protect_docs:
        app.include_router(docs.router)
    app.include_router(ui_router(settings))  # the dashboard: `/`, `/runs/...`, `/ui/static/...`
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn eval_service.api.main:app` builds the app from the environment on first use only.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
