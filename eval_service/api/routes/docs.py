"""The OpenAPI document and its Swagger page behind the read token: served here instead of by
FastAPI when DUET_READ_AUTH is on and DUET_PUBLIC_DOCS is off, so a closed ledger does not hand
its API surface to anyone who asks."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from eval_service.api.deps import require_reader

router = APIRouter(dependencies=[Depends(require_reader)], include_in_schema=False)


@router.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} - docs")
