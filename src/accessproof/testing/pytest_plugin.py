"""pytest fixtures for accessproof, registered through the ``pytest11`` entry point.

- ``accessproof_capture``: a :class:`~accessproof.testing.CapturedRuns` on a
  private tracer provider (``accessproof_capture.tracer_provider``);
- ``accessproof_webhook_secret``: a fresh ``whsec_`` secret for the test;
- ``signed_stripe_event``: a factory of signed test-mode subscription events,
  signed with ``accessproof_webhook_secret`` unless given ``secret=``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from accessproof.testing.capture import CapturedRuns, capture_runs
from accessproof.testing.events import SignedEvent, signed_event


class SignedEventFactory(Protocol):
    """Builds one signed delivery; see :func:`accessproof.testing.signed_event`."""

    def __call__(
        self, event_type: str = ..., *, secret: str | None = ..., **fields: Any
    ) -> SignedEvent: ...


@pytest.fixture
def accessproof_capture() -> Iterator[CapturedRuns]:
    """Capture the test's runs in memory on a private tracer provider."""
    with capture_runs() as captured:
        yield captured


@pytest.fixture
def accessproof_webhook_secret() -> str:
    """A webhook signing secret for this test only."""
    return "whsec_" + secrets.token_hex(24)


@pytest.fixture
def signed_stripe_event(accessproof_webhook_secret: str) -> SignedEventFactory:
    """A factory of signed test-mode subscription events."""

    def build(
        event_type: str = "customer.subscription.updated",
        *,
        secret: str | None = None,
        **fields: Any,
    ) -> SignedEvent:
        return signed_event(secret or accessproof_webhook_secret, event_type, **fields)

    return build
