"""The receiver error table agrees with what OTLP clients retry."""

from __future__ import annotations

import grpc
import pytest

from accessproof.receive.errors import ERRORS, ErrorKind, retry_after_seconds

RETRIED_HTTP = {429, 502, 503, 504}


def test_every_kind_has_one_row():
    """No refusal can be raised without a status, a code and a message."""
    assert set(ERRORS) == set(ErrorKind)


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_retryable_rows_use_statuses_clients_retry(kind):
    """A row marked retryable maps to statuses OTLP clients retry, others do not."""
    spec = ERRORS[kind]

    assert (spec.http_status in RETRIED_HTTP) is spec.retryable
    assert (spec.grpc_code is grpc.StatusCode.UNAVAILABLE) is spec.retryable


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [(None, 1), (0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (30.0, 30), (float("inf"), 1)],
)
def test_retry_after_is_whole_seconds_at_least_one(delay, seconds):
    """Delays round up to whole seconds and never fall below one."""
    assert retry_after_seconds(delay) == seconds
