"""Errors as `application/problem+json` (RFC 9457): one shape for every refusal the gateway makes,
including FastAPI's own (404, 405, 422) and a Redis that does not answer (503)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from relayq.connection import REDIS_ERRORS
from relayq.schemas.validation import describe_problems, validation_problems

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class ProblemError(Exception):
    """Raised anywhere in a request: answered as its problem, with its headers."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail, errors=errors)
        self.headers = headers or {}


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM,
        headers=headers,
    )


def not_found(job_id: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"no job {job_id!r} (unknown, expired or not yours)")


def bad_request(detail: str) -> ProblemError:
    return ProblemError(400, "Bad Request", detail)


def unprocessable(detail: str, errors: list[dict[str, Any]] | None = None) -> ProblemError:
    return ProblemError(422, "Unprocessable Content", detail, errors=errors)


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown, expired or another tenant's job"},
}


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(exc.problem, exc.headers)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(
            Problem(title=title, status=exc.status_code, detail=detail), dict(exc.headers or {})
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = validation_problems(exc.errors())
        return problem_response(
            Problem(
                title="Unprocessable Content",
                status=422,
                detail=describe_problems(errors),
                errors=errors,
            )
        )

    async def on_redis(request: Request, exc: Exception) -> Response:
        log.warning("Redis unavailable: %s", type(exc).__name__)
        return problem_response(
            Problem(title="Service Unavailable", status=503, detail="Redis is unavailable"),
            {"Retry-After": "1"},
        )

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem(title="Internal Server Error", status=500, detail="internal error")
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    for error in REDIS_ERRORS:
        app.add_exception_handler(error, on_redis)
    app.add_exception_handler(Exception, on_error)
