"""The OpenAPI document (`/openapi.json`: FastAPI's, with the job body's schema added) and the API
reference at `/docs`, rendered here from that document as plain HTML.

FastAPI's own /docs loads Swagger UI's scripts from a CDN; on the dashboard's origin, where the
page keeps an API key in local storage, any script from elsewhere could read it. This page runs
no script at all, and says so in its Content-Security-Policy.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import TypeAdapter

from relayq.gateway.models import JobRequest

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
METHODS = ("get", "post", "put", "patch", "delete")
API_DESCRIPTION = """\
Claude chat and computer-use jobs over HTTP, run by relayq's workers.

Every /v1 request needs `Authorization: Bearer <key>`; the key's tenant sees, follows and
cancels only its own jobs, under the ids it gave them. Submit with POST /v1/jobs (202 and the
job's links), follow with GET /v1/jobs/{id}/events (Server-Sent Events: reconnect with
Last-Event-ID and nothing is lost or repeated), cancel with DELETE /v1/jobs/{id}.

Errors are application/problem+json (RFC 9457). Over the tenant's submit rate or daily quota:
429 with Retry-After. The job's schema: `Job` below, and CONTRACT.md."""

router = APIRouter(include_in_schema=False)


def install_openapi(app: FastAPI, description: str) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=description,
                routes=app.routes,
            )
            job_schema = TypeAdapter(JobRequest).json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(job_schema.pop("$defs", {}))
            components["Job"] = job_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def type_of(schema: dict[str, Any]) -> str:
    """A JSON schema as a short type expression: `list[Event]`, `string | null`, `"chat"`."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " | ".join(type_of(s) for s in schema[union])
    kind = schema.get("type")
    if kind == "array":
        return f"list[{type_of(schema.get('items', {}))}]"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"dict[string, {type_of(schema['additionalProperties'])}]"
    text = str(kind or "any")
    if "format" in schema:
        text += f" ({schema['format']})"
    return text


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    ops = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ops.append(
                {
                    "anchor": re.sub(r"[^a-z0-9_]+", "-", f"{method} {path}".lower()).strip("-"),
                    "method": method,
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "secured": op.get("security", [{}]) != [],
                    "parameters": [
                        {
                            "name": p["name"],
                            "where": p["in"],
                            "required": p.get("required", False),
                            "type": type_of(p.get("schema", {})),
                            "description": p.get("description", "")
                            or p.get("schema", {}).get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": type_of(body["schema"]) if "schema" in body else "",
                    "responses": [
                        {
                            "status": status,
                            "description": r.get("description", ""),
                            "type": ", ".join(
                                f"{media}: {type_of(c['schema'])}" if "schema" in c else media
                                for media, c in r.get("content", {}).items()
                            ),
                        }
                        for status, r in op.get("responses", {}).items()
                    ],
                }
            )
    return ops


def _schemas(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        out.append(
            {
                "name": name,
                "description": schema.get("description", ""),
                "type": "" if "properties" in schema else type_of(schema),
                "fields": [
                    {
                        "name": field,
                        "required": field in required,
                        "type": type_of(prop),
                        "default": json.dumps(prop["default"]) if "default" in prop else "",
                        "description": prop.get("description", ""),
                    }
                    for field, prop in schema.get("properties", {}).items()
                ],
            }
        )
    return out


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("relayq.gateway", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


@router.get("/docs")
async def api_reference(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    spec = app.openapi()
    info = spec.get("info", {})
    page = (
        _environment()
        .get_template("docs.html")
        .render(
            title=info.get("title", ""),
            version=info.get("version", ""),
            summary=info.get("summary", ""),
            description=info.get("description", ""),
            operations=_operations(spec),
            schemas=_schemas(spec),
        )
    )
    return HTMLResponse(
        page, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    )
