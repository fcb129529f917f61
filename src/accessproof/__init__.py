"""Prove that each Stripe event changed what the customer can do.

The instrumentation library an app imports::

    import accessproof

    run = accessproof.verify_and_open(body, request.headers.get("Stripe-Signature"),
                                      webhook_secret)
    queue.put({"event_id": run.event_id, "carrier": run.carrier()})

    # in the worker
    run = accessproof.resume(job["event_id"], job["carrier"])
    with run.step("entitlement") as step:
        grant(...)
        step.observe(plan="pro", features=["api"], access="granted")

The library uses the app's tracer provider (the global one, or ``tracer_provider=``)
and never installs one, except through :func:`setup_tracing`.
"""

from __future__ import annotations

from accessproof.conventions import Access, DrillMode, Step
from accessproof.instrument._run import Run, StepHandle, resume
from accessproof.instrument._setup import setup_tracing
from accessproof.instrument._version import __version__
from accessproof.instrument._webhook import open_run, verify_and_open
from accessproof.instrument.errors import VerificationReason, WebhookVerificationError

__all__ = [
    "Access",
    "DrillMode",
    "Run",
    "Step",
    "StepHandle",
    "VerificationReason",
    "WebhookVerificationError",
    "__version__",
    "open_run",
    "resume",
    "setup_tracing",
    "verify_and_open",
]
