"""``accessproof drill`` and ``accessproof demo``: their options and entry points.

Exit statuses follow :mod:`accessproof.cli`: 0 when every stage passed, 1 when
one failed or timed out, 2 for bad usage (a missing secret, an unknown plan).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Final

from accessproof.catalog import Catalog, CatalogError, load_catalog
from accessproof.conventions import Step
from accessproof.drill.drill import Drill, DrillTarget, EngineApi
from accessproof.drill.events import Price

DEFAULT_API: Final = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT: Final = 120.0
SECRET_ENV: Final = "STRIPE_WEBHOOK_SECRET"  # noqa: S105 - a variable name

_EXIT_OK: Final = 0
_EXIT_FAILED: Final = 1
_EXIT_USAGE: Final = 2


class UsageError(Exception):
    """Options that cannot make a drill; the message says which and why."""


def add_drill_command(commands: Any) -> None:
    """Add ``drill`` to the ``accessproof`` sub-command parsers."""
    drill = commands.add_parser(
        "drill",
        help="prove the whole path with signed test-mode events, then break it",
        description=(
            "Send a healthy signed test-mode event to the app's webhook, wait until "
            "the engine proves it, then send drill events that break the entitlement "
            "step and check the incidents they raise."
        ),
    )
    drill.add_argument("--webhook-url", required=True, help="the app's webhook URL")
    drill.add_argument(
        "--webhook-secret",
        default=os.environ.get(SECRET_ENV),
        help=f"the endpoint's whsec_ secret (default ${SECRET_ENV}; never printed)",
    )
    drill.add_argument(
        "--api",
        default=os.environ.get("ACCESSPROOF_API", DEFAULT_API),
        help=f"engine URL (default {DEFAULT_API} or $ACCESSPROOF_API)",
    )
    drill.add_argument(
        "--customer", required=True, help="a test customer id, e.g. cus_drill..."
    )
    drill.add_argument("--config", type=Path, help="the engine's plan catalog file")
    drill.add_argument("--plan", help="a plan of the catalog (default: the first paid)")
    drill.add_argument(
        "--price", help="a Stripe price id of that plan (default: from --config)"
    )
    drill.add_argument("--lookup-key", help="the price's lookup key, if it has one")
    drill.add_argument(
        "--product", help="the price's product id, if the catalog maps products"
    )
    drill.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=(
            f"seconds each stage may wait (default {DEFAULT_TIMEOUT:g}); the skipped "
            "entitlement stage also waits out the catalog's entitlement deadline"
        ),
    )
    drill.add_argument("--json", action="store_true", help="print the report as JSON")
    drill.set_defaults(handler=run_drill_command)


def add_demo_command(commands: Any) -> None:
    """Add ``demo`` to the ``accessproof`` sub-command parsers."""
    demo = commands.add_parser(
        "demo",
        help="start an engine and the example app, run the drill, keep serving",
        description=(
            "Start the proof engine on a temporary SQLite store and the example "
            "billing app instrumented with accessproof, run the drill against them, "
            "print the proof and the incidents, and keep serving until Ctrl-C."
        ),
    )
    demo.add_argument(
        "--no-wait", action="store_true", help="exit after the drill (for scripts)"
    )
    demo.add_argument(
        "--timeout", type=float, default=60.0, help="seconds each stage may wait"
    )
    demo.set_defaults(handler=run_demo_command)


def run_drill_command(args: argparse.Namespace) -> int:
    """Run ``accessproof drill``; return the exit status."""
    try:
        target, deadline = _target(args)
        incident_timeout = args.timeout + deadline if deadline else args.timeout
        drill = Drill(
            target,
            EngineApi(args.api),
            timeout=args.timeout,
            incident_timeout=incident_timeout,
        )
    except (UsageError, ValueError) as error:
        print(f"accessproof drill: {error}", file=sys.stderr)
        return _EXIT_USAGE

    report = drill.run()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.render())
    return _EXIT_OK if report.ok else _EXIT_FAILED


def run_demo_command(args: argparse.Namespace) -> int:
    """Run ``accessproof demo``; return the exit status."""
    from accessproof.drill.demo import Demo

    return Demo(timeout=args.timeout).run(wait=not args.no_wait)


def _target(args: argparse.Namespace) -> tuple[DrillTarget, float | None]:
    """Build the drill's target; also return the catalog's entitlement deadline."""
    if not args.webhook_secret:
        raise UsageError(f"give --webhook-secret or set ${SECRET_ENV}")
    catalog = _catalog(args.config)
    price, plan = choose_price(
        catalog,
        plan=args.plan,
        price=args.price,
        lookup_key=args.lookup_key,
        product=args.product,
    )
    deadline = None
    if catalog is not None:
        rule = catalog.rule_for("customer.subscription.updated")
        deadline = rule.deadlines.get(Step.ENTITLEMENT)
    target = DrillTarget(
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        customer=args.customer,
        price=price,
        plan=plan,
    )
    return target, deadline


def _catalog(path: Path | None) -> Catalog | None:
    if path is None:
        return None
    try:
        return load_catalog(path)
    except CatalogError as error:
        raise UsageError(str(error)) from None


def choose_price(
    catalog: Catalog | None,
    *,
    plan: str | None = None,
    price: str | None = None,
    lookup_key: str | None = None,
    product: str | None = None,
) -> tuple[Price, str | None]:
    """Pick the price the healthy event buys, and the plan the catalog maps it to.

    ``price`` wins when given. Otherwise the price (or lookup key, or product)
    comes from ``plan`` in the catalog, or from its first plan that has one.
    Raises :class:`UsageError` when nothing can be chosen or the catalog maps
    the chosen ids to another plan than ``plan``.
    """
    if price is None and catalog is None:
        raise UsageError("give --price, or --config to take a price from the catalog")
    if price is None:
        assert catalog is not None
        price, lookup_key, product = _from_catalog(catalog, plan)

    chosen = Price(id=price or "", lookup_key=lookup_key, product=product)
    if catalog is None:
        return chosen, plan
    mapped, _ = catalog.plan_for([chosen.id], _some(lookup_key), _some(product))
    if mapped is None:
        raise UsageError(f"the catalog maps price {chosen.id!r} to no plan")
    if plan is not None and mapped != plan:
        raise UsageError(f"the catalog maps price {chosen.id!r} to {mapped!r}")
    return chosen, mapped


def _from_catalog(
    catalog: Catalog, plan: str | None
) -> tuple[str, str | None, str | None]:
    names = [plan] if plan is not None else list(catalog.plans)
    for name in names:
        spec = catalog.plans.get(name)
        if spec is None:
            known = ", ".join(catalog.plans) or "none"
            raise UsageError(f"plan {name!r} is not in the catalog (plans: {known})")
        if spec.prices or spec.lookup_keys or spec.products:
            first = spec.prices[0] if spec.prices else f"price_drill_{name}"
            return (
                first,
                spec.lookup_keys[0] if spec.lookup_keys else None,
                spec.products[0] if spec.products else None,
            )
    raise UsageError("no plan of the catalog lists a price, lookup key or product")


def _some(value: str | None) -> list[str]:
    return [value] if value else []
