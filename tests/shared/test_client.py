"""The client's error family: one root to catch, and a failure's stored text clipped in one place."""

from __future__ import annotations

import socket

import pytest

from shared.client import (
    AuthError,
    DuetClientError,
    LedgerClient,
    LedgerError,
    LedgerUnavailable,
    StaleAttempt,
    error_detail,
)
from shared.schemas import MAX_ERROR_CHARS, FailRequest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_ledger_is_a_client_error_naming_the_address():
    url = f"http://127.0.0.1:{_closed_port()}"
    with LedgerClient(url, retry_for_s=0.0) as client, pytest.raises(DuetClientError) as e:
        client.list_runs()
    assert isinstance(e.value, LedgerUnavailable) and url in str(e.value)


def test_every_ledger_error_is_a_client_error():
    for cls in (LedgerError, AuthError, StaleAttempt):
        assert issubclass(cls, DuetClientError)
    refused = LedgerError(
        422, [{"loc": ["body", "spec", "limit"], "msg": "must be >= 1"}], "POST", "/v1/jobs"
    )
    assert error_detail(refused) == "spec.limit: must be >= 1"
    assert "422: spec.limit: must be >= 1" in str(refused)


def test_a_long_failure_keeps_its_tail():
    traceback = "x" * MAX_ERROR_CHARS + "RuntimeError: the line that says what broke"
    body = FailRequest.clipped(worker_id="w", attempt=1, error=traceback, retryable=False)
    assert len(body.error) == MAX_ERROR_CHARS
    assert body.error.endswith("RuntimeError: the line that says what broke")
