"""Property-based: schemathesis generates requests from the gateway's own OpenAPI document, valid
and invalid ones, and sends them over real HTTP; no input may make the gateway answer 5xx.

Bounded: 25 examples per operation (12 operations: 300 in all), derandomized so that every run
sends the same inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation

from relayq.embedded_redis import EmbeddedRedis
from relayq.gateway import create_app
from relayq.schemas.settings import Settings
from tests.test_gateway import ACME, API_KEYS, running_gateway

# jobs submitted here stay queued on a db no worker serves (nor any other test reads)
SCHEMA_DB = 3
EXAMPLES = {GenerationMode.POSITIVE: 13, GenerationMode.NEGATIVE: 12}


def _operations() -> list[APIOperation[Any, Any, Any, Any]]:
    """The operations of the document the gateway serves (built without a Redis)."""
    unused = "redis://127.0.0.1:1/0"
    app = create_app(Settings(redis_url=unused, api_keys=SecretStr(API_KEYS)), redis_url=unused)
    schema = schemathesis.openapi.from_dict(app.openapi())
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def schema_gateway(redis_server: EmbeddedRedis) -> Iterator[str]:
    with running_gateway(f"redis://127.0.0.1:{redis_server.port}/{SCHEMA_DB}") as base_url:
        yield base_url


def test_the_document_has_every_operation() -> None:
    assert len(OPERATIONS) == 12


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda m: m.value)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_generated_request_makes_the_gateway_answer_5xx(
    schema_gateway: str, operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode
) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case[Any]) -> None:
        # stream=True: a valid event stream of a queued job stays open; its status is enough
        headers = {**dict(case.headers or {}), **ACME}
        response = case.call(base_url=schema_gateway, headers=headers, stream=True, timeout=10)
        case.validate_response(response, checks=[not_a_server_error])

    try:
        check()
    except Unsatisfiable:
        # an operation without inputs (no parameters, no body) has no invalid requests
        assert mode is GenerationMode.NEGATIVE and not operation.path_parameters
