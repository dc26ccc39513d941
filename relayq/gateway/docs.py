"""The OpenAPI document: FastAPI's, with the job body's schema (a discriminated union) added."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from relayq.gateway.models import JobRequest


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
