"""Configuration of the example billing app, shared by its web and worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from opentelemetry.trace import TracerProvider
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Fault = Literal["none", "skip_job", "wrong_plan"]


class BillingConfig(BaseModel):
    """What the example app needs: its secret, its plans, its database, its fault.

    ``prices`` maps a Stripe price id or lookup key to a plan name; ``plans``
    maps each plan to the features it unlocks. ``fault`` breaks the app on
    purpose so the engine has something to catch: ``skip_job`` never runs the
    background job, ``wrong_plan`` makes the entitlement step write (and so read
    back) a plan other than the right one. ``tracer_provider`` serves the web
    process only; the worker process builds its own from the ``otlp_*`` fields.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    webhook_secret: SecretStr
    database: Path
    prices: dict[str, str] = Field(
        default_factory=lambda: {"price_1Pro": "pro", "pro_monthly": "pro"}
    )
    plans: dict[str, list[str]] = Field(
        default_factory=lambda: {"free": [], "pro": ["api", "exports"]}
    )
    default_plan: str = "free"
    fault: Fault = "none"
    service_name: str = "billing-app"
    otlp_endpoint: str | None = None
    otlp_protocol: Literal["grpc", "http"] = "grpc"
    tracer_provider: TracerProvider | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _plans_are_known(self) -> Self:
        if self.default_plan not in self.plans:
            raise ValueError(f"default_plan {self.default_plan!r} is not in plans")
        unknown = sorted(set(self.prices.values()) - set(self.plans))
        if unknown:
            raise ValueError(f"prices map to plans missing from plans: {unknown}")
        return self

    def for_worker(self) -> BillingConfig:
        """Return a copy without the tracer provider, fit to send to another process."""
        return self.model_copy(update={"tracer_provider": None})
