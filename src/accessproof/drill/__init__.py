"""The failure drill and the one-command demo.

``accessproof drill`` proves the whole path before real billing traffic depends
on it: a healthy signed test-mode event must be proven by the engine, and two
drill events that break the entitlement step on purpose must each raise the
incident an operator would get. ``accessproof demo`` runs the same drill against
an engine and the example app it starts itself.
"""

from __future__ import annotations

from accessproof.drill.drill import (
    Drill,
    DrillReport,
    DrillTarget,
    EngineApi,
    StageResult,
    WebhookSender,
)
from accessproof.drill.events import Price, sign_event, subscription_event

__all__ = [
    "Drill",
    "DrillReport",
    "DrillTarget",
    "EngineApi",
    "Price",
    "StageResult",
    "WebhookSender",
    "sign_event",
    "subscription_event",
]
