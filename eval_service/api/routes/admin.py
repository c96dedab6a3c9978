"""Health, Prometheus metrics and admin operations."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from eval_service.api.deps import require_admin, require_reader
from eval_service.api.responses import errors

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz(request: Request) -> dict:
    return {"status": "ok", "version": request.app.version}


@router.get(
    "/metrics",
    dependencies=[Depends(require_reader)],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **errors(401)},
)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/admin/flush-wandb", dependencies=[Depends(require_admin)], responses=errors(401, 403))
def flush_wandb(request: Request) -> dict:
    """Drain the W&B outbox now and close open W&B runs so their files are complete.
    Returns how many rows are still pending (non-zero while W&B is failing)."""
    sink = request.app.state.sink
    return {"pending": sink.flush(), "last_error": sink.last_error}
