"""The retry table of CONTRACT.md, row by row, on the policy function the workers use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anthropic
import httpx2
import pytest
from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError

from relayq.schemas.jobs import ChatJob, ConnOptions
from relayq.workers.retry_policy import backoff, error_info, retry_delay

JOB = ChatJob(prompt="x", conn_options=ConnOptions(max_retry=3, retry_interval=1.0))


def status_error(code: int, *, retryable: bool | None = None, retry_after: str | None = None):  # type: ignore[no-untyped-def]
    request = httpx2.Request("POST", "http://api/v1/messages")
    headers = {"retry-after": retry_after} if retry_after else {}
    response = httpx2.Response(code, headers=headers, request=request)
    cause = anthropic.APIStatusError("failed", response=response, body=None)
    error = APIStatusError("failed", status_code=code, retryable=retryable)
    error.__cause__ = cause
    return error


@pytest.mark.parametrize("code", [408, 429, 500, 503, 529])
def test_transient_statuses_before_output_are_retried(code: int) -> None:
    assert retry_delay(status_error(code), JOB, attempt=1) is not None


@pytest.mark.parametrize("code", [400, 401, 403, 404, 413])
def test_other_client_errors_are_final(code: int) -> None:
    assert retry_delay(status_error(code), JOB, attempt=1) is None


def test_timeouts_and_connection_errors_before_output_are_retried() -> None:
    assert retry_delay(APITimeoutError(), JOB, attempt=1) is not None
    assert retry_delay(APIConnectionError(), JOB, attempt=1) is not None


def test_after_output_a_failure_is_final_unless_the_job_opts_in_to_restart() -> None:
    after_output = status_error(529, retryable=False)
    restarting = JOB.model_copy(update={"restart_after_output": True})

    assert retry_delay(after_output, JOB, attempt=1) is None
    assert retry_delay(after_output, restarting, attempt=1) is not None
    assert retry_delay(status_error(400, retryable=False), restarting, attempt=1) is None


def test_retry_after_is_honoured_beyond_the_sdks_60_second_cap() -> None:
    delay = retry_delay(status_error(429, retry_after="120"), JOB, attempt=1)
    assert delay is not None and delay >= 120


def test_the_try_budget_is_conn_options_max_retry() -> None:
    assert retry_delay(status_error(529), JOB, attempt=3) is not None
    assert retry_delay(status_error(529), JOB, attempt=4) is None


def test_no_retry_is_scheduled_past_the_deadline() -> None:
    soon = JOB.model_copy(update={"deadline": datetime.now(UTC) + timedelta(seconds=5)})
    assert retry_delay(status_error(429, retry_after="30"), soon, attempt=1) is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0)):
        samples = [backoff(1.0, attempt) for _ in range(50)]
        assert all(ceiling * 0.5 <= s <= ceiling for s in samples)
        assert len(set(samples)) > 1


# ---------------------------------------------------------------------------------------------
# what events say: a failure as a person reads it, never an SDK repr


def sdk_status_error(code: int, error_type: str, message: str) -> APIStatusError:
    request = httpx2.Request("POST", "http://api/v1/messages")
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    response = httpx2.Response(code, json=body, request=request)
    cause = anthropic.APIStatusError(f"Error code: {code} - {body}", response=response, body=body)
    error = APIStatusError(cause.message, status_code=code, body=body)
    error.__cause__ = cause
    return error


def test_an_overload_that_is_retried_says_so_with_the_delay() -> None:
    info = error_info(sdk_status_error(529, "overloaded_error", "Overloaded"), retry_in=0.43)

    assert info.message == "Anthropic API overloaded (529), retrying in 0.4 s"
    assert (info.type, info.status_code, info.retryable) == ("APIStatusError", 529, True)


def test_a_rejected_request_carries_the_apis_own_reason() -> None:
    error = sdk_status_error(
        400, "invalid_request_error", "messages: text content blocks must be non-empty"
    )

    info = error_info(error)

    assert info.message == (
        "Anthropic API rejected the request (400): messages: text content blocks must be non-empty"
    )
    assert "Error code" not in info.message and "{" not in info.message


def test_a_transient_failure_after_output_says_why_it_was_not_retried() -> None:
    info = error_info(status_error(529, retryable=False))

    assert (
        info.message
        == "Anthropic API overloaded (529); not retried: output had already been streamed"
    )


def test_connection_failures_and_timeouts_name_what_happened() -> None:
    refused = APIConnectionError()
    refused.__cause__ = httpx2.ConnectError("[Errno 111] Connection refused")

    assert error_info(refused).message == (
        "could not connect to the Anthropic API ([Errno 111] Connection refused)"
    )
    assert error_info(APITimeoutError(), retry_in=1.0).message == (
        "Anthropic API did not answer in time, retrying in 1.0 s"
    )
    assert error_info(APIConnectionError("stream ended before message_stop")).message == (
        "the connection to the Anthropic API broke off (stream ended before message_stop)"
    )
