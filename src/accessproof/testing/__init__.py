"""Test helpers for teams that instrument their billing code with accessproof.

Drive the webhook handler with signed test-mode events, capture its runs in
memory and ask the engine's own verdict whether each would be proven, and
whether a broken entitlement step would be caught::

    from accessproof.testing import DrillMode, capture_runs, signed_event

    def test_upgrade_is_proven(client):
        with capture_runs() as captured:
            app.tracer_provider = captured.tracer_provider
            delivery = signed_event(SECRET, customer="cus_test")
            client.post("/webhooks/stripe", data=delivery.body,
                        headers=delivery.headers)
        assert captured.judge("accessproof.yaml")[delivery.id].proven

With pytest, the ``accessproof_capture`` and ``signed_stripe_event`` fixtures
of :mod:`accessproof.testing.pytest_plugin` do the same.
"""

from __future__ import annotations

from accessproof.conventions import DrillMode, Reason, RunState
from accessproof.engine.clock import FakeClock
from accessproof.testing.capture import (
    CapturedRun,
    CapturedRuns,
    Judgement,
    capture_runs,
    judge,
)
from accessproof.testing.events import (
    Price,
    SignedEvent,
    sign_event,
    signed_event,
    subscription_event,
)

__all__ = [
    "CapturedRun",
    "CapturedRuns",
    "DrillMode",
    "FakeClock",
    "Judgement",
    "Price",
    "Reason",
    "RunState",
    "SignedEvent",
    "capture_runs",
    "judge",
    "sign_event",
    "signed_event",
    "subscription_event",
]
