"""Security of the dashboard's routes on a real ledger (uvicorn on loopback): with
DUET_READ_AUTH=true every page and every data route it reads needs the token, assets are public
and hold nothing but the shipped files, and the static route lets nothing outside its folder out."""

from __future__ import annotations

import http.client
from pathlib import Path

import httpx
from fastapi.routing import APIRoute

from eval_service.api.core.config import ServerSettings
from eval_service.api.ui import ui_router
from eval_service.api.ui.router import STATIC_DIR, STATIC_PREFIX
from tests.eval_service.api import dashboard_ledger
from tests.eval_service.api.dashboard_ledger import RUN, TASK

dashboard_factory = dashboard_ledger.dashboard_factory  # the seeded ledger fixture

REPO = Path(__file__).resolve().parents[3]


def _pages(d: dashboard_ledger.Dashboard) -> dict[str, str]:
    """Route path -> a URL of it: every page of the dashboard."""
    return {
        "/": "/",
        "/runs/{run}": f"/runs/{RUN}",
        "/jobs/{job_id}": f"/jobs/{d.job[10]}",
        "/compare": f"/compare?a={d.ckpt[10]}&b={d.ckpt[20]}&run={RUN}",
    }


def _data(d: dashboard_ledger.Dashboard) -> list[str]:
    """Every read route the pages' scripts call."""
    j, a, b = d.job[10], d.ckpt[10], d.ckpt[20]
    return [
        "/v1/runs",
        f"/v1/runs/{RUN}",
        f"/v1/runs/{RUN}/tasks",
        f"/v1/runs/{RUN}/scores?task={TASK}",
        f"/v1/runs/{RUN}/best",
        f"/v1/runs/{RUN}/checkpoints",
        f"/v1/runs/{RUN}/train-metrics?key=train/loss&since_step=3",
        f"/v1/jobs?run={RUN}&status=queued",
        f"/v1/jobs/{j}",
        f"/v1/jobs/{j}/result",
        f"/v1/jobs/{j}/samples?truncated=true&q=x",
        f"/v1/compare?a={a}&b={b}",
        f"/v1/compare/samples?a={a}&b={b}",
    ]


def test_every_page_is_covered_here():
    # a page added to the router without a case in _pages fails this test
    router = ui_router(ServerSettings(api_token="t", admin_token="a", read_auth=True))
    pages = {
        r.path for r in router.routes if isinstance(r, APIRoute) and not r.path.startswith(STATIC_PREFIX)
    }
    seeded = dashboard_ledger.Dashboard(srv=None, run_id=1, ckpt={10: 1, 20: 2}, job={10: 1})  # type: ignore[arg-type]
    assert pages == set(_pages(seeded))


def test_read_auth_protects_every_page_and_the_data_it_reads(dashboard_factory):
    d = dashboard_factory(read_auth=True)
    good = {"Authorization": f"Bearer {d.srv.token}"}
    for path in [*_pages(d).values(), *_data(d)]:
        assert httpx.get(d.url + path).status_code == 401, path
        assert httpx.get(d.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        res = httpx.get(d.url + path, headers=good)
        assert res.status_code == 200, (path, res.text[:300])
        admin = httpx.get(d.url + path, headers={"Authorization": f"Bearer {d.srv.admin_token}"})
        assert admin.status_code == 200, path
    for path in _pages(d).values():
        # a page link may carry the token (a navigation cannot send a header); a wrong one is refused
        sep = "&" if "?" in path else "?"
        assert httpx.get(f"{d.url}{path}{sep}token=wrong").status_code == 401, path
        assert httpx.get(f"{d.url}{path}{sep}token={d.srv.token}").status_code == 200, path
    for path in _data(d):
        # ...but a data route takes only the header: a token in a URL never reads data
        sep = "&" if "?" in path else "?"
        assert httpx.get(f"{d.url}{path}{sep}token={d.srv.token}").status_code == 401, path


def test_assets_are_public_and_only_the_shipped_files(dashboard_factory):
    d = dashboard_factory(read_auth=True)
    shipped = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert {p.name for p in shipped} >= {"run.js", "job.js", "compare.js", "uPlot.iife.min.js"}
    for p in shipped:
        res = httpx.get(f"{d.url}{STATIC_PREFIX}/{p.relative_to(STATIC_DIR).as_posix()}")
        assert res.status_code == 200 and res.content == p.read_bytes(), p
        assert RUN not in res.text  # no run data in an asset: it is the same file for every ledger


ESCAPES = [
    "/ui/static/../../pyproject.toml",
    "/ui/static/../../../../../../pyproject.toml",
    "/ui/static/%2e%2e/%2e%2e/router.py",
    "/ui/static/..%2f..%2frouter.py",
    "/ui/static/..%5c..%5crouter.py",
    "/ui/static/vendor/../../templates/base.html",
    "/ui/static/%2fetc%2fpasswd",
    "/ui/static//etc/passwd",
    "/ui/static/run.js%00.png",
    "/ui/static/..",
    "/ui/static/",
]


def test_static_route_refuses_path_escapes(dashboard_factory):
    d = dashboard_factory()
    secrets = [
        (REPO / "pyproject.toml").read_text()[:40],
        "{% block",  # a template's source
        "root:",  # /etc/passwd
        "def ui_router",  # the router's source
    ]
    for raw in ESCAPES:
        # http.client sends the path as written; httpx and browsers would remove the dot segments
        conn = http.client.HTTPConnection("127.0.0.1", d.srv.port, timeout=10)
        conn.request("GET", raw)
        res = conn.getresponse()
        body = res.read().decode(errors="replace")
        conn.close()
        assert res.status == 404, (raw, res.status)
        assert not any(s in body for s in secrets), raw
