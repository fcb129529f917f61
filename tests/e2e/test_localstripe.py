"""End to end with a real Stripe emulator: localstripe sends real signed webhooks.

The official ``stripe`` client creates a customer, a product, a plan and a
subscription on localstripe; localstripe delivers ``customer.subscription.created``
to the example app (a subprocess), whose spans reach a real engine. Cancelling
delivers ``customer.subscription.deleted``. localstripe writes envelopes of API
version 2017-08-15: the period sits at the top of the subscription and items carry
a ``plan``, not a ``price``; the library reads both shapes.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from tests.conftest import require
from tests.drill.conftest import CATALOG, App, free_port
from tests.harness import EngineThread, wait_for

pytestmark = [pytest.mark.localstripe, pytest.mark.slow]

#: localstripe has plans, not prices; a plan's id stands where a price id would.
PLAN_ID = "price_1Pro"
WEBHOOK_EVENTS = ["customer.subscription.created", "customer.subscription.deleted"]


class LocalStripe:
    """A localstripe process on a free loopback port, and a client for it."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.log = folder / "localstripe.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "localstripe",
                    "--port",
                    str(self.port),
                    "--from-scratch",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=folder,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = stripe.StripeClient(
            "sk_test_" + secrets.token_hex(12), base_addresses={"api": self.url}
        )
        wait_for(self._listening, timeout=30, what="localstripe to listen")

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"localstripe exited:\n{self.log.read_text()}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def send_webhooks_to(self, url: str, secret: str) -> None:
        """Register (or replace) the one webhook endpoint localstripe delivers to."""
        body = {"url": url, "secret": secret, "events": WEBHOOK_EVENTS}
        request = urllib.request.Request(
            f"{self.url}/_config/webhooks/accessproof",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def subscribe(self, plan: str) -> tuple[str, str]:
        """Create a paying customer subscribed to ``plan``; return both ids."""
        api = self.client.v1
        customer = api.customers.create(params={"description": "e2e test customer"})
        method = api.payment_methods.create(
            params={
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2040,
                    "cvc": "123",
                },
            }
        )
        api.payment_methods.attach(method.id, params={"customer": customer.id})
        api.customers.update(
            customer.id,
            params={"invoice_settings": {"default_payment_method": method.id}},
        )
        sub = api.subscriptions.create(
            params={"customer": customer.id, "items": [{"plan": plan}]}
        )
        assert sub.status == "active"
        return customer.id, sub.id

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    require(importlib.util.find_spec("localstripe") is not None, "localstripe")
    emulator = LocalStripe(tmp_path_factory.mktemp("localstripe"))
    product = emulator.client.v1.products.create(params={"name": "Pro"})
    emulator.client.v1.plans.create(
        params={
            "id": PLAN_ID,
            "product": product.id,
            "amount": 2000,
            "currency": "usd",
            "interval": "month",
        }
    )
    yield emulator
    emulator.stop()


def event_id_of(emulator: LocalStripe, subscription: str, event_type: str) -> str:
    """The id of the event localstripe raised for a subscription."""

    def found() -> str | None:
        for event in emulator.client.v1.events.list(params={"type": event_type}):
            if event.data.object["id"] == subscription:
                return str(event.id)
        return None

    return wait_for(found, timeout=10, what=f"localstripe's {event_type} event")


def await_run(
    engine: EngineThread,
    emulator: LocalStripe,
    subscription: str,
    event_type: str,
    *states: str,
) -> dict[str, Any]:
    """Wait until the run of the event localstripe raised reaches one of ``states``."""
    event_id = event_id_of(emulator, subscription, event_type)
    return engine.wait_for_state(event_id, *states, timeout=20)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineThread]:
    with EngineThread(tmp_path_factory.mktemp("engine"), catalog=CATALOG) as running:
        yield running


def test_subscription_created_then_cancelled_is_proven_granted_then_revoked(
    localstripe: LocalStripe,
    engine: EngineThread,
    start_app: Callable[..., App],
) -> None:
    """localstripe's real webhooks are proven: pro granted, then access revoked."""
    secret = "whsec_" + secrets.token_hex(24)
    app = start_app(secret)
    localstripe.send_webhooks_to(app.webhook_url, secret)

    customer, sub = localstripe.subscribe(PLAN_ID)
    created = await_run(
        engine, localstripe, sub, "customer.subscription.created", "proven", "incident"
    )

    assert created["state"] == "proven", created["incidents"]
    assert created["customer_id"] == customer
    assert (created["observed"]["plan"], created["observed"]["access"]) == (
        "pro",
        "granted",
    )

    localstripe.client.v1.subscriptions.cancel(sub)
    deleted = await_run(
        engine, localstripe, sub, "customer.subscription.deleted", "proven", "incident"
    )

    assert deleted["state"] == "proven", deleted["incidents"]
    assert deleted["expected"]["access"] == "revoked"
    assert deleted["observed"]["access"] == "revoked"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("skip_job", "access_not_changed"), ("wrong_plan", "access_mismatch")],
)
def test_a_broken_entitlement_job_turns_the_same_flow_into_an_incident(
    localstripe: LocalStripe,
    engine: EngineThread,
    start_app: Callable[..., App],
    fault: str,
    reason: str,
) -> None:
    """With the app broken on purpose, localstripe's delivery ends in an incident."""
    secret = "whsec_" + secrets.token_hex(24)
    app = start_app(secret, fault=fault)
    localstripe.send_webhooks_to(app.webhook_url, secret)

    customer, sub = localstripe.subscribe(PLAN_ID)
    run = await_run(
        engine, localstripe, sub, "customer.subscription.created", "incident", "proven"
    )

    assert (run["state"], run["reason"]) == ("incident", reason)
    incident = run["incidents"][-1]
    assert incident["customer_id"] == customer
    assert "did not change" in incident["summary"]
    assert incident["drill"] is False
