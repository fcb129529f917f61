"""The plan catalog: its file, its validation and the lookups the engine makes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from accessproof.catalog import (
    DEFAULT_ACCESS,
    Catalog,
    CatalogError,
    check_config,
    load_catalog,
)
from accessproof.conventions import Access, AccessPolicy, Step
from accessproof.durations import format_duration, parse_duration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "accessproof.yaml"

PLANS: dict[str, Any] = {
    "free": {"features": []},
    "pro": {
        "prices": ["price_1Pro"],
        "lookup_keys": ["pro_monthly"],
        "products": ["prod_Pro"],
        "features": ["api", "exports"],
    },
    "team": {
        "prices": ["price_1Team"],
        "lookup_keys": ["team_monthly"],
        "products": ["prod_Team"],
        "features": ["api", "sso"],
    },
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accessproof.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.mark.parametrize(
    ("spelled", "seconds"),
    [
        ("60s", 60.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("2d", 172_800.0),
        ("0.5h", 1800.0),
        (" 45s ", 45.0),
        ("90", 90.0),
        (90, 90.0),
        (1.5, 1.5),
    ],
)
def test_durations_are_read_as_seconds(spelled: object, seconds: float) -> None:
    """A number, or a number with an s, m, h or d unit, is a number of seconds."""
    assert seconds == parse_duration(spelled)


@pytest.mark.parametrize(
    "spelled", ["0s", 0, -5, "-5s", True, "", "10 minutes", "1w", float("inf"), None]
)
def test_durations_refuse_what_is_not_a_positive_time(spelled: object) -> None:
    """Zero, negatives, booleans, unknown units and non-numbers are refused."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(spelled)


@pytest.mark.parametrize(
    ("seconds", "spelled"),
    [(60.0, "1m"), (900.0, "15m"), (172_800.0, "2d"), (45.0, "45s")],
)
def test_durations_format_in_their_largest_whole_unit(
    seconds: float, spelled: str
) -> None:
    """A duration is shown in the largest unit that divides it exactly."""
    assert spelled == format_duration(seconds)


def test_builtin_catalog_judges_access_only() -> None:
    """Without a file there are no plans, so no id maps and nothing is unmapped."""
    catalog = Catalog.builtin()

    assert not catalog.has_plans
    assert catalog.default_plan == "free"
    assert catalog.plan_for(["price_1Pro"], ["pro_monthly"], ["prod_Pro"]) == (None, ())
    assert dict(DEFAULT_ACCESS) == catalog.access


def test_builtin_rules_require_reconcile_and_entitlement_for_access_events() -> None:
    """An access-changing event needs reconcile and entitlement within a minute."""
    rule = Catalog.builtin().rule_for("customer.subscription.updated")

    assert frozenset({Step.RECONCILE, Step.ENTITLEMENT}) == rule.required
    assert dict(rule.deadlines) == {
        Step.RECONCILE: 60.0,
        Step.ENTITLEMENT: 60.0,
        Step.NOTIFY: 900.0,
    }
    assert rule.webhook_deadline == 900.0


@pytest.mark.parametrize(
    "event_type",
    [
        "customer.subscription.trial_will_end",
        "invoice.payment_failed",
        "invoice.payment_action_required",
        "checkout.session.expired",
        "product.updated",
    ],
)
def test_events_that_change_no_access_require_nothing_by_default(
    event_type: str,
) -> None:
    """The default required steps do not apply to events that imply no change."""
    catalog = Catalog.model_validate(
        {"steps": {"default": {"required": ["reconcile", "entitlement", "notify"]}}}
    )

    assert frozenset() == catalog.rule_for(event_type).required


def test_event_rules_merge_over_the_default_rule() -> None:
    """An event's own entry replaces required steps and merges deadlines per step."""
    catalog = Catalog.model_validate(
        {
            "steps": {
                "default": {
                    "required": ["reconcile", "entitlement", "notify"],
                    "deadlines": {"entitlement": "2m", "notify": "30m"},
                },
                "customer.subscription.deleted": {
                    "required": ["reconcile", "entitlement"],
                    "deadlines": {"reconcile": 10},
                },
                "customer.subscription.trial_will_end": {"required": ["notify"]},
            },
            "webhook_deadline": "1h",
        }
    )

    deleted = catalog.rule_for("customer.subscription.deleted")
    assert frozenset({Step.RECONCILE, Step.ENTITLEMENT}) == deleted.required
    assert dict(deleted.deadlines) == {
        Step.RECONCILE: 10.0,
        Step.ENTITLEMENT: 120.0,
        Step.NOTIFY: 1800.0,
    }
    assert deleted.webhook_deadline == 3600.0

    updated = catalog.rule_for("customer.subscription.updated")
    assert (
        frozenset({Step.RECONCILE, Step.ENTITLEMENT, Step.NOTIFY}) == updated.required
    )
    assert (
        frozenset({Step.NOTIFY})
        == catalog.rule_for("customer.subscription.trial_will_end").required
    )


def test_a_default_rule_without_required_keeps_the_builtin_steps() -> None:
    """Changing only the default deadlines leaves the built-in required steps."""
    catalog = Catalog.model_validate(
        {"steps": {"default": {"deadlines": {"entitlement": "5m"}}}}
    )

    rule = catalog.rule_for("invoice.paid")
    assert frozenset({Step.RECONCILE, Step.ENTITLEMENT}) == rule.required
    assert rule.deadlines[Step.ENTITLEMENT] == 300.0


def test_access_policy_is_merged_over_the_defaults() -> None:
    """Statuses the file names change; the others keep their default policy."""
    catalog = Catalog.model_validate(
        {"access": {"past_due": "revoke", "paused": "grant"}}
    )

    assert catalog.policy_for("past_due") == AccessPolicy.REVOKE
    assert catalog.policy_for("paused") == AccessPolicy.GRANT
    assert catalog.policy_for("trialing") == AccessPolicy.GRANT
    assert catalog.policy_for("canceled") == AccessPolicy.REVOKE
    assert catalog.policy_for("dormant") is None


def test_owners_match_event_types_and_the_first_match_wins() -> None:
    """Owners are globs over event types, tried in the order of the file."""
    catalog = Catalog.model_validate(
        {
            "owners": [
                {"match": "customer.subscription.deleted", "team": "retention"},
                {
                    "match": "customer.subscription.*",
                    "team": "billing",
                    "runbook": "https://runbooks.example.com/billing",
                },
                {"match": "invoice.payment_*", "team": "payments"},
            ]
        }
    )

    deleted = catalog.owner_for("customer.subscription.deleted")
    updated = catalog.owner_for("customer.subscription.updated")
    failed = catalog.owner_for("invoice.payment_failed")
    assert deleted is not None
    assert deleted.team == "retention"
    assert updated is not None
    assert (
        updated.team,
        updated.runbook,
    ) == ("billing", "https://runbooks.example.com/billing")
    assert failed is not None
    assert failed.team == "payments"
    assert catalog.owner_for("invoice.paid") is None
    assert catalog.owner_for("customer.subscriptionXupdated") is None


def test_price_ids_decide_before_lookup_keys_and_products() -> None:
    """A price id beats a lookup key, which beats a product id."""
    catalog = Catalog.model_validate({"plans": PLANS})

    assert catalog.plan_for(["price_1Team"], ["pro_monthly"], ["prod_Pro"]) == (
        "team",
        (),
    )
    assert catalog.plan_for(["price_new"], ["pro_monthly"], ["prod_Team"]) == (
        "pro",
        (),
    )
    assert catalog.plan_for(["price_new"], ["new_key"], ["prod_Team"]) == ("team", ())


def test_ids_that_map_to_no_plan_are_reported() -> None:
    """When nothing maps, the ids of the most precise kind given are returned."""
    catalog = Catalog.model_validate({"plans": PLANS})

    assert catalog.plan_for(["price_a", "price_b"], ["key_a"], ["prod_a"]) == (
        None,
        ("price_a", "price_b"),
    )
    assert catalog.plan_for([], ["key_a"], ["prod_a"]) == (None, ("key_a",))
    assert catalog.plan_for([], [], ["prod_a"]) == (None, ("prod_a",))
    assert catalog.plan_for([], [], []) == (None, ())


def test_plan_features_are_frozen_sets() -> None:
    """A plan's features come back as a set; an unknown plan has none."""
    catalog = Catalog.model_validate({"plans": PLANS})

    assert frozenset({"api", "exports"}) == catalog.features_of("pro")
    assert frozenset() == catalog.features_of("free")
    assert frozenset() == catalog.features_of("enterprise")
    assert catalog.knows_plan("team")
    assert not catalog.knows_plan("enterprise")


def test_links_fill_their_placeholders_encoded() -> None:
    """Values are percent-encoded, booleans lowercase; a missing value gives no link."""
    catalog = Catalog.model_validate(
        {
            "links": {
                "trace": "https://grafana.example.com/explore?traceId={trace_id}",
                "stripe": "https://dashboard.stripe.com/{livemode}/events/{event_id}",
            }
        }
    )

    assert (
        catalog.link("trace", trace_id="a/b c")
        == "https://grafana.example.com/explore?traceId=a%2Fb%20c"
    )
    assert (
        catalog.link("stripe", livemode=False, event_id="evt_1")
        == "https://dashboard.stripe.com/false/events/evt_1"
    )
    assert catalog.link("stripe", livemode=True) is None
    assert catalog.link("tempo", trace_id="abc") is None


def test_example_catalog_loads_with_the_design_keys() -> None:
    """The shipped example is valid and means what the design says."""
    catalog = load_catalog(EXAMPLE)

    assert check_config(EXAMPLE) == []
    assert catalog.default_plan == "free"
    assert catalog.plan_for(["price_1ProYearly"]) == ("pro", ())
    assert frozenset({"api", "exports"}) == catalog.features_of("pro")
    assert catalog.policy_for("past_due") == AccessPolicy.GRACE
    assert catalog.grace_access == Access.GRANTED
    deleted = catalog.rule_for("customer.subscription.deleted")
    assert frozenset({Step.RECONCILE, Step.ENTITLEMENT}) == deleted.required
    owner = catalog.owner_for("customer.subscription.updated")
    assert owner is not None
    assert owner.team == "billing"


def test_an_empty_file_is_the_builtin_catalog(tmp_path: Path) -> None:
    """A file with nothing in it validates to the same catalog as no file."""
    assert Catalog.builtin() == load_catalog(write(tmp_path, "# nothing yet\n"))


def test_a_default_plan_needs_no_plans_when_none_are_defined() -> None:
    """Without plans, default_plan is only a name and is not checked."""
    assert Catalog.model_validate({"default_plan": "basic"}).default_plan == "basic"


def test_direct_construction_checks_fields_against_each_other() -> None:
    """Building a Catalog in code applies the same cross-field checks as a file."""
    with pytest.raises(ValidationError, match="default plan 'gratis'"):
        Catalog.model_validate({"plans": PLANS, "default_plan": "gratis"})


CASES = [
    pytest.param(
        """
        plans:
          free: {}
        default_plan: gratis
        """,
        3,
        "default_plan",
        "'gratis'",
        id="default plan not among plans",
    ),
    pytest.param(
        """
        plans:
          free: {}
          pro:
            prices: [price_1Pro]
          team:
            prices: [price_2, price_1Pro]
        """,
        6,
        "plans.team.prices[1]",
        "'price_1Pro' is listed in plan 'pro' and in plan 'team'",
        id="price in two plans",
    ),
    pytest.param(
        """
        plans:
          free: {}
          pro:
            lookup_keys: [pro]
          team:
            lookup_keys:
              - pro
        """,
        7,
        "plans.team.lookup_keys[0]",
        "'pro'",
        id="lookup key in two plans",
    ),
    pytest.param(
        """
        access:
          past_due: grace
          delinquent: revoke
        """,
        3,
        "access.delinquent",
        "'delinquent' is not a Stripe subscription status",
        id="unknown status",
    ),
    pytest.param(
        """
        access:
          past_due: maybe
        """,
        2,
        "access.past_due",
        "'maybe'",
        id="unknown policy",
    ),
    pytest.param(
        """
        steps:
          default:
            required:
              - reconcile
              - webhook
        """,
        5,
        "steps.default.required[1]",
        "'webhook'",
        id="webhook listed as required",
    ),
    pytest.param(
        """
        steps:
          default:
            deadlines:
              entitlement: 60x
        """,
        4,
        "steps.default.deadlines.entitlement",
        "'60x' is not a duration",
        id="bad duration",
    ),
    pytest.param(
        """
        steps:
          customer.subscription.deleted:
            deadlines: {notify: 0}
        """,
        3,
        "steps['customer.subscription.deleted'].deadlines.notify",
        "greater than zero, not 0",
        id="zero deadline",
    ),
    pytest.param(
        """
        steps:
          default: {}
          Subscription Updated:
            required: [reconcile]
        """,
        3,
        "steps.Subscription Updated",
        "'Subscription Updated' is neither 'default' nor a Stripe event type",
        id="step key that is no event type",
    ),
    pytest.param(
        """
        owners:
          - match: "customer.subscription.*"
            team: billing
            runbok: https://runbooks.example.com
        """,
        4,
        "owners[0].runbok",
        "unknown key 'runbok'",
        id="misspelt key",
    ),
    pytest.param(
        """
        owners:
          - match: "invoice.*"
        """,
        2,
        "owners[0].team",
        "required key is missing",
        id="missing team",
    ),
    pytest.param(
        """
        links:
          trace: "https://grafana.example.com/explore?traceId={trace}"
        """,
        2,
        "links.trace",
        "unknown placeholder {trace}",
        id="unknown link placeholder",
    ),
    pytest.param(
        """
        webhook_deadline: yes
        """,
        1,
        "webhook_deadline",
        "not True",
        id="boolean duration",
    ),
    pytest.param(
        """
        plans:
          pro: {}
          pro: {features: [api]}
        default_plan: pro
        """,
        3,
        "plans.pro",
        "duplicate key 'pro'",
        id="duplicate key",
    ),
]


@pytest.mark.parametrize(("text", "line", "field", "value"), CASES)
def test_catalog_errors_name_file_line_field_and_value(
    tmp_path: Path, text: str, line: int, field: str, value: str
) -> None:
    """Each problem is one line naming the file, its line, the field and the value."""
    path = write(tmp_path, text)

    with pytest.raises(CatalogError) as caught:
        load_catalog(path)

    assert len(caught.value.problems) == 1
    problem = caught.value.problems[0]
    assert problem.startswith(f"{path}:{line}: {field}: "), problem
    assert value in problem
    assert caught.value.problems == check_config(path)


def test_every_problem_of_a_file_gets_its_own_line(tmp_path: Path) -> None:
    """Several mistakes in one file are all reported, one line each."""
    path = write(
        tmp_path,
        """
        access:
          dormant: grant
        steps:
          default:
            deadlines: {entitlement: soon}
        links:
          trace: "https://x.example.com/{secret}"
        """,
    )

    problems = check_config(path)

    assert [int(problem.split(":")[1]) for problem in problems] == [2, 5, 7]
    assert str(path) == problems[0].split(":")[0]


def test_yaml_syntax_errors_name_file_and_line(tmp_path: Path) -> None:
    """A file that is not YAML is reported with the line the parser stopped at."""
    path = write(tmp_path, "plans:\n  pro:\n    prices: [price_1Pro\n  team: {}\n")

    with pytest.raises(CatalogError, match=rf"^{path}:4: YAML syntax error: "):
        load_catalog(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """Loading a file that does not exist says so and names it."""
    path = tmp_path / "absent.yaml"

    assert [f"{path}: catalog file not found"] == check_config(path)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    """A list or a scalar at the top is reported as such."""
    path = write(tmp_path, "- free\n- pro\n")

    assert [
        f"{path}:1: the catalog must be a mapping of keys like plans and steps"
    ] == (check_config(path))


def test_catalog_error_is_a_value_error(tmp_path: Path) -> None:
    """Start-up code that catches ValueError also catches catalog problems."""
    with pytest.raises(ValueError, match="catalog file not found"):
        load_catalog(tmp_path / "absent.yaml")
