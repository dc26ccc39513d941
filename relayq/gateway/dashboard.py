"""The dashboard: `/` (the tenant's jobs) and `/jobs/{id}` (one job, live), plus its script and
stylesheet. The page holds no data; its script asks the API with the key the user enters."""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from relayq.gateway.jobs import JobIdPath

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# the page keeps an API key in local storage: nothing but its own script may run on it
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)
_template = Template((STATIC_DIR / "dashboard.html").read_text(encoding="utf-8"))


def _page(name: str, job_id: str = "") -> HTMLResponse:
    title = f"Job {job_id} — relayq" if job_id else "Jobs — relayq"
    body = _template.substitute(
        title=html.escape(title),
        page=name,
        job_id=html.escape(job_id),
        jobs_hidden="" if name == "jobs" else "hidden",
        job_hidden="" if name == "job" else "hidden",
    )
    return HTMLResponse(body, headers=HEADERS)


@router.get("/")
async def dashboard() -> HTMLResponse:
    return _page("jobs")


@router.get("/jobs/{job_id}")
async def dashboard_job(job_id: JobIdPath) -> HTMLResponse:
    return _page("job", job_id)


def _asset(name: str, media_type: str) -> None:
    content = (STATIC_DIR / name).read_bytes()

    async def asset() -> Response:
        return Response(
            content, media_type=media_type, headers={"Cache-Control": "no-cache", **HEADERS}
        )

    router.add_api_route(f"/static/{name}", asset, methods=["GET"])


_asset("dashboard.js", "text/javascript")
_asset("dashboard.css", "text/css")
