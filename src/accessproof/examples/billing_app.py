"""An example billing app, instrumented with accessproof end to end.

A Flask app with a Stripe webhook endpoint and a background worker in a process
of its own (see :mod:`accessproof.examples.billing_worker`). The endpoint
verifies the delivery and, for a subscription event, records the ``webhook``
step and queues a job with the run's carrier; the worker resumes the run and
records ``reconcile``, ``entitlement`` and ``notify``. The ``fault`` setting
breaks it on purpose.

The worker only handles subscription objects. Every other event Stripe sends
(``invoice.paid``, ``checkout.session.completed``, entitlement summaries...) is
verified and answered 200, but no run is opened for it: a ``webhook`` step
with no job behind it would leave the engine waiting for an entitlement that
never comes, and it would report ``access_not_changed``. So the endpoint
verifies with ``record_webhook=False`` and records the step itself only for
the events its worker handles.

Run it with::

    python -m accessproof.examples.billing_app --port 8000 \\
        --webhook-secret whsec_... --otlp-endpoint http://127.0.0.1:4317
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from flask import Flask, Response, jsonify, request

import accessproof
from accessproof import Step
from accessproof.examples.billing_config import BillingConfig, Fault
from accessproof.examples.billing_worker import BillingWorker, Job, decide

logger = logging.getLogger(__name__)

WORKER_KEY = "billing_worker"


def create_app(config: BillingConfig) -> Flask:
    """Build the app and start its worker process.

    The worker is in ``app.extensions["billing_worker"]``; call its ``stop()``
    when done with the app.
    """
    app = Flask(__name__)
    worker = BillingWorker(config)
    worker.start()
    app.extensions[WORKER_KEY] = worker

    @app.post("/webhooks/stripe")
    def stripe_webhook() -> tuple[Response, int]:
        return _receive(config, worker)

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        if worker.alive:
            return jsonify(status="ok"), 200
        return jsonify(status="worker stopped"), 503

    return app


def _receive(config: BillingConfig, worker: BillingWorker) -> tuple[Response, int]:
    try:
        run = accessproof.verify_and_open(
            request.get_data(),
            request.headers.get("Stripe-Signature"),
            config.webhook_secret.get_secret_value(),
            tracer_provider=config.tracer_provider,
            record_webhook=False,
        )
    except accessproof.WebhookVerificationError as error:
        return jsonify(error="invalid webhook", reason=error.reason.value), 400

    event: dict[str, Any] = dict(run.event or {})
    if decide(event, config) is None:
        return jsonify(received=True, queued=False), 200

    with run.step(Step.WEBHOOK):
        if config.fault == "skip_job":
            logger.info("fault skip_job: dropping the job for %s", run.event_id)
        else:
            job = Job(event_id=run.event_id, carrier=run.carrier(), event=event)
            worker.submit(job)
    return jsonify(received=True, queued=True), 200


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m accessproof.examples.billing_app",
        description="Run the example billing app, instrumented with accessproof.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("STRIPE_WEBHOOK_SECRET"),
        help="the endpoint's whsec_ key (default: $STRIPE_WEBHOOK_SECRET)",
    )
    parser.add_argument("--database", type=Path, default=Path("billing-accounts.db"))
    parser.add_argument("--fault", choices=get_args(Fault), default="none")
    parser.add_argument(
        "--otlp-endpoint", help="OTLP endpoint (default: the OTEL_* variables)"
    )
    parser.add_argument("--otlp-protocol", choices=("grpc", "http"), default="grpc")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the app on the development server until interrupted."""
    args = _arguments(argv)
    if not args.webhook_secret:
        raise SystemExit("--webhook-secret (or STRIPE_WEBHOOK_SECRET) is required")
    logging.basicConfig(level=logging.INFO)

    provider = accessproof.setup_tracing(
        "billing-app", endpoint=args.otlp_endpoint, protocol=args.otlp_protocol
    )
    config = BillingConfig(
        webhook_secret=args.webhook_secret,
        database=args.database,
        fault=args.fault,
        otlp_endpoint=args.otlp_endpoint,
        otlp_protocol=args.otlp_protocol,
        tracer_provider=provider,
    )
    app = create_app(config)
    atexit.register(provider.shutdown)
    atexit.register(app.extensions[WORKER_KEY].stop)
    # Exit through atexit on SIGTERM too, so queued jobs finish and spans flush.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app.run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
