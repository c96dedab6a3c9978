"""Dashboard pages (`/`, `/runs/{run}`, `/jobs/{job_id}`, `/compare`) and their assets (`/ui/static/...`).

The pages are thin shells: the browser reads every number through the same JSON routes the CLI uses
(`/v1/...`), so the dashboard can never show something the API would not. The app wires it in with
`app.include_router(ui_router(settings))`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from eval_service.api.core.config import ServerSettings
from eval_service.api.deps import require_reader

UI_DIR = Path(__file__).resolve().parent
STATIC_DIR = UI_DIR / "static"
TEMPLATES_DIR = UI_DIR / "templates"
STATIC_PREFIX = "/ui/static"
POLL_MS = 2000  # live pages re-read their data this often


def ui_router(settings: ServerSettings) -> APIRouter:
    """The dashboard's routes; reads need a token exactly when the API's reads do (`DUET_READ_AUTH`)."""
    templates = Jinja2Templates(directory=TEMPLATES_DIR)  # autoescape is on for .html
    # A fixed directory: StaticFiles resolves every path and refuses anything outside it.
    files = StaticFiles(directory=STATIC_DIR)
    tokens = [settings.api_token.encode(), settings.admin_token.encode()]

    def page_reader(request: Request, token: str | None = Query(None)) -> None:
        """A page link may carry `?token=` (a browser cannot send a header on navigation);
        otherwise the API's own read check applies (`Authorization: Bearer`)."""
        if token is not None and settings.read_auth:
            # compare against both so the timing does not reveal which one nearly matched
            ok = [secrets.compare_digest(token.encode(), t) for t in tokens]
            if not any(ok):
                raise HTTPException(401, "invalid API token", headers={"WWW-Authenticate": "Bearer"})
            return
        require_reader(request)

    pages = APIRouter(include_in_schema=False, dependencies=[Depends(page_reader)])

    def render(request: Request, template: str, title: str, **data: object) -> HTMLResponse:
        context = {"title": title, "static": STATIC_PREFIX, "poll_ms": POLL_MS, "data": data}
        return templates.TemplateResponse(request, template, context)

    @pages.get("/", response_class=HTMLResponse)
    def runs_page(request: Request) -> HTMLResponse:
        return render(request, "runs.html", "runs")

    @pages.get("/runs/{run}", response_class=HTMLResponse)
    def run_page(request: Request, run: str) -> HTMLResponse:
        return render(request, "run.html", f"run {run}", run=run)

    @pages.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: int) -> HTMLResponse:
        return render(request, "job.html", f"job {job_id}", job=job_id)

    @pages.get("/compare", response_class=HTMLResponse)
    def compare_page(
        request: Request, a: int, b: int, run: str | None = None, task: str | None = None
    ) -> HTMLResponse:
        return render(request, "compare.html", f"compare {a} vs {b}", a=a, b=b, run=run or "", task=task)

    router = APIRouter(include_in_schema=False)
    router.include_router(pages)

    @router.get(STATIC_PREFIX + "/{path:path}")
    async def static(path: str, request: Request) -> Response:
        # Assets are public (no data in them); lookup_path refuses anything resolving outside STATIC_DIR.
        return await files.get_response(os.path.normpath(path), request.scope)

    return router
