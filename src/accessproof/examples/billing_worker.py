"""The example app's background worker: reconcile, entitlement, notify.

It runs in a process of its own, started by the web app and fed through a
``multiprocessing`` queue, the way a job queue worker would be. It builds its own
tracer provider in that process and flushes it after every job, so each job's
spans leave before the next job starts.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import queue
import sqlite3
import uuid
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, Final, TypedDict

from opentelemetry.sdk.trace import TracerProvider

import accessproof
from accessproof import Access, Step
from accessproof.examples.billing_config import BillingConfig

logger = logging.getLogger(__name__)

#: Subscription statuses that keep access; past_due keeps it as a grace period.
GRANTING_STATUSES: Final = frozenset({"active", "trialing", "past_due"})

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    plan TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entitlements (
    customer_id TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    features TEXT NOT NULL,
    access TEXT NOT NULL
);
"""


class Job(TypedDict):
    """One queued piece of work: the event and the carrier of its run."""

    event_id: str
    carrier: dict[str, str]
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Entitlement:
    """What gates a customer's access, as stored."""

    plan: str
    features: tuple[str, ...]
    access: Access


@dataclass(frozen=True, slots=True)
class Decision:
    """What one subscription event means for its customer."""

    customer_id: str
    subscription_id: str
    status: str
    entitlement: Entitlement


class Accounts:
    """The app's own SQLite accounts database: subscriptions and entitlements."""

    def __init__(self, path: Path) -> None:
        self._path = path
        with closing(self._connect()) as db, db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=10)

    def save_subscription(self, decision: Decision) -> None:
        """Write the local subscription state from the provider's."""
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?)",
                (
                    decision.subscription_id,
                    decision.customer_id,
                    decision.status,
                    decision.entitlement.plan,
                ),
            )

    def set_entitlement(self, customer_id: str, entitlement: Entitlement) -> None:
        """Change what the customer can use."""
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO entitlements VALUES (?, ?, ?, ?)",
                (
                    customer_id,
                    entitlement.plan,
                    json.dumps(list(entitlement.features)),
                    entitlement.access.value,
                ),
            )

    def entitlement(self, customer_id: str) -> Entitlement | None:
        """Read back what the customer can use, or ``None`` if never set."""
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT plan, features, access FROM entitlements WHERE customer_id = ?",
                (customer_id,),
            ).fetchone()
        if row is None:
            return None
        return Entitlement(row[0], tuple(json.loads(row[1])), Access(row[2]))

    def subscription(self, subscription_id: str) -> tuple[str, str] | None:
        """Return the stored ``(status, plan)`` of a subscription."""
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT status, plan FROM subscriptions WHERE subscription_id = ?",
                (subscription_id,),
            ).fetchone()
        return None if row is None else (row[0], row[1])


def decide(event: Mapping[str, Any], config: BillingConfig) -> Decision | None:
    """Return what a subscription event means, or ``None`` for other events."""
    sub = event.get("data", {}).get("object", {})
    if sub.get("object") != "subscription":
        return None

    status = str(sub.get("status") or "")
    plan = config.default_plan
    if status in GRANTING_STATUSES:
        plan = _plan_of(sub, config) or config.default_plan
    access = Access.GRANTED if status in GRANTING_STATUSES else Access.REVOKED
    customer = sub.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    return Decision(
        customer_id=str(customer or ""),
        subscription_id=str(sub.get("id") or ""),
        status=status,
        entitlement=Entitlement(plan, tuple(config.plans[plan]), access),
    )


def _plan_of(sub: Mapping[str, Any], config: BillingConfig) -> str | None:
    for item in sub.get("items", {}).get("data", []):
        price = item.get("price") or item.get("plan") or {}
        for key in (price.get("id"), price.get("lookup_key")):
            if key in config.prices:
                return config.prices[key]
    return None


def _wrong(entitlement: Entitlement, config: BillingConfig) -> Entitlement:
    """The ``wrong_plan`` fault: the first other plan, in name order."""
    plan = next(name for name in sorted(config.plans) if name != entitlement.plan)
    return Entitlement(plan, tuple(config.plans[plan]), entitlement.access)


def handle_job(
    job: Job, config: BillingConfig, accounts: Accounts, provider: TracerProvider
) -> None:
    """Run one job: every step is a step of the event's run."""
    run = accessproof.resume(job["event_id"], job["carrier"], tracer_provider=provider)
    decision = decide(job["event"], config)
    if decision is None:
        return

    with run.step(Step.RECONCILE) as step:
        accounts.save_subscription(decision)
        step.record(status=decision.status, plan=decision.entitlement.plan)

    with run.step(Step.ENTITLEMENT) as step:
        wanted = decision.entitlement
        if config.fault == "wrong_plan":
            wanted = _wrong(wanted, config)
        accounts.set_entitlement(decision.customer_id, wanted)
        seen = accounts.entitlement(decision.customer_id)
        if seen is not None:
            step.observe(plan=seen.plan, features=seen.features, access=seen.access)

    with run.step(Step.NOTIFY) as step:
        template = (
            "plan_active"
            if decision.entitlement.access is Access.GRANTED
            else "access_ended"
        )
        logger.info("notified customer %s (%s)", decision.customer_id, template)
        step.record(channel="email", template=template)


def serve_jobs(
    config: BillingConfig,
    jobs: Queue[Job | str | None],
    done: Queue[str],
) -> None:
    """Run jobs until ``None`` arrives; the worker process's main function.

    A string in the job queue is a drain marker: it is echoed on ``done`` once
    every job before it has run and its spans are flushed.
    """
    provider = accessproof.setup_tracing(
        f"{config.service_name}-worker",
        endpoint=config.otlp_endpoint,
        protocol=config.otlp_protocol,
        set_global=False,
    )
    accounts = Accounts(config.database)
    while (job := jobs.get()) is not None:
        if isinstance(job, str):
            done.put(job)
            continue
        try:
            handle_job(job, config, accounts, provider)
        except Exception:
            logger.exception("job for %s failed", job["event_id"])
        provider.force_flush()
    provider.shutdown()


class BillingWorker:
    """The background worker process and the queue that feeds it."""

    def __init__(self, config: BillingConfig) -> None:
        context = multiprocessing.get_context("spawn")
        self._jobs: Queue[Job | str | None] = context.Queue()
        self._done: Queue[str] = context.Queue()
        self._process = context.Process(
            target=serve_jobs,
            args=(config.for_worker(), self._jobs, self._done),
            name="billing-worker",
            daemon=True,
        )

    def start(self) -> None:
        """Start the worker process."""
        self._process.start()

    @property
    def alive(self) -> bool:
        """Whether the worker process is running."""
        return self._process.is_alive()

    def submit(self, job: Job) -> None:
        """Queue a job; it runs in the worker process."""
        self._jobs.put(job)

    def drain(self, timeout: float) -> bool:
        """Wait until every job queued so far has run; ``False`` on timeout."""
        marker = uuid.uuid4().hex
        self._jobs.put(marker)
        try:
            while self._done.get(timeout=timeout) != marker:
                pass
        except queue.Empty:
            return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Let queued jobs finish, then stop the process (killed after ``timeout``)."""
        if self._process.is_alive():
            self._jobs.put(None)
            self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout)
        self._jobs.close()
        self._done.close()
