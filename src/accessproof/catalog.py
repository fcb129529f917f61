"""The plan catalog: plans, access policy, required steps, owners and links.

One YAML file (``accessproof.yaml`` by default) describes what each Stripe price
buys, what each subscription status means for access, which steps each event type
needs and by when, who owns an incident and where its links point. An example::

    plans:
      free: {features: []}
      pro:
        prices: [price_1Pro]
        lookup_keys: [pro_monthly]
        features: [api, exports]
    default_plan: free
    access: {past_due: grace}
    steps:
      default:
        required: [reconcile, entitlement, notify]
        deadlines: {reconcile: 60s, entitlement: 60s, notify: 15m}
    owners:
      - {match: "customer.subscription.*", team: billing}
    links:
      trace: "https://grafana.example.com/explore?traceId={trace_id}"

:func:`load_catalog` reads and validates the file; every problem becomes one line
naming the file, the line, the field and the offending value. The lookups the
engine makes per run (:meth:`Catalog.plan_for`, :meth:`Catalog.rule_for`,
:meth:`Catalog.owner_for`) read dictionaries computed once at load time.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import translate
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final
from urllib.parse import quote

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from accessproof.conventions import Access, AccessPolicy, Step
from accessproof.durations import parse_duration
from accessproof.expect import ACCESS_EVENT_TYPES, SUBSCRIPTION_STATUSES

DEFAULT_CATALOG_FILE: Final = "accessproof.yaml"

#: What each subscription status means for access when the catalog is silent.
DEFAULT_ACCESS: Final[Mapping[str, AccessPolicy]] = MappingProxyType(
    {
        "trialing": AccessPolicy.GRANT,
        "active": AccessPolicy.GRANT,
        "past_due": AccessPolicy.GRACE,
        "incomplete": AccessPolicy.REVOKE,
        "incomplete_expired": AccessPolicy.REVOKE,
        "unpaid": AccessPolicy.REVOKE,
        "canceled": AccessPolicy.REVOKE,
        "paused": AccessPolicy.REVOKE,
    }
)

#: Steps every access-changing event needs when the catalog names none.
DEFAULT_REQUIRED: Final = frozenset({Step.RECONCILE, Step.ENTITLEMENT})

#: Seconds from the webhook's acceptance by which each step must have arrived.
DEFAULT_DEADLINES: Final[Mapping[Step, float]] = MappingProxyType(
    {Step.RECONCILE: 60.0, Step.ENTITLEMENT: 60.0, Step.NOTIFY: 900.0}
)

#: Seconds after the first later step by which a missing webhook is an incident.
DEFAULT_WEBHOOK_DEADLINE: Final = 900.0

#: The placeholders a link template may use.
LINK_PLACEHOLDERS: Final = frozenset(
    {
        "trace_id",
        "event_id",
        "customer_id",
        "subscription_id",
        "incident_id",
        "livemode",
    }
)

_DEFAULT_RULE_KEY: Final = "default"
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
_GLOB = re.compile(r"[a-z0-9_.*?\[\]!-]+")
_FORMATTER = string.Formatter()


class CatalogError(ValueError):
    """The catalog file cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _status(value: str) -> str:
    if value not in SUBSCRIPTION_STATUSES:
        known = ", ".join(sorted(SUBSCRIPTION_STATUSES))
        raise ValueError(f"{value!r} is not a Stripe subscription status ({known})")
    return value


def _rule_key(value: str) -> str:
    if value != _DEFAULT_RULE_KEY and not _EVENT_TYPE.fullmatch(value):
        raise ValueError(
            f"{value!r} is neither 'default' nor a Stripe event type "
            f"like 'customer.subscription.updated'"
        )
    return value


def _not_webhook(value: Step) -> Step:
    if value is Step.WEBHOOK:
        raise ValueError(
            "the webhook step is always required and its deadline is "
            "webhook_deadline; list only reconcile, entitlement or notify"
        )
    return value


def _glob(value: str) -> str:
    if not _GLOB.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an event type pattern like 'customer.subscription.*'"
        )
    return value


def _web_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _link_template(value: str) -> str:
    _web_url(value)
    for name in _placeholders(value):
        if name not in LINK_PLACEHOLDERS:
            known = ", ".join(sorted(LINK_PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{name}}} (known: {known})")
    return value


def _placeholders(template: str) -> list[str]:
    try:
        fields = [part[1] for part in _FORMATTER.parse(template)]
    except ValueError as error:
        raise ValueError(f"{template!r} has unbalanced braces ({error})") from None
    return [name for name in fields if name is not None]


Name = Annotated[str, AfterValidator(_non_empty)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
SubscriptionStatus = Annotated[str, AfterValidator(_status)]
RuleKey = Annotated[str, AfterValidator(_rule_key)]
RequiredStep = Annotated[Step, AfterValidator(_not_webhook)]
EventPattern = Annotated[str, AfterValidator(_glob)]
WebUrl = Annotated[str, AfterValidator(_web_url)]
LinkTemplate = Annotated[str, AfterValidator(_link_template)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanSpec(_Model):
    """One plan: the Stripe ids that buy it and the features it unlocks."""

    prices: list[Name] = Field(default_factory=list)
    lookup_keys: list[Name] = Field(default_factory=list)
    products: list[Name] = Field(default_factory=list)
    features: list[Name] = Field(default_factory=list)


class StepRule(_Model):
    """Required steps and deadlines, for every event type or for one.

    ``required`` left out inherits from the ``default`` rule (an event type that
    implies no access change inherits nothing); ``deadlines`` are merged step by
    step over the default ones.
    """

    required: list[RequiredStep] | None = None
    deadlines: dict[RequiredStep, Duration] = Field(default_factory=dict)


class Owner(_Model):
    """Who answers for incidents of the event types ``match`` (a glob) covers."""

    match: EventPattern
    team: Name
    runbook: WebUrl | None = None


@dataclass(frozen=True, slots=True)
class PlanMatch:
    """How Stripe ids matched a plan.

    ``kind`` is ``"price"``, ``"lookup key"`` or ``"product"``. With a ``plan``,
    ``ids`` holds the one id that decided it; without, the ids of that kind that
    map to nothing (empty when no ids were given or the catalog has no plans).
    """

    plan: str | None
    kind: str
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResolvedRule:
    """The steps one event type requires and every step's deadline, in seconds.

    ``deadlines`` holds reconcile, entitlement and notify, required or not;
    ``webhook_deadline`` counts from the first later step's arrival instead.
    """

    required: frozenset[Step]
    deadlines: Mapping[Step, float]
    webhook_deadline: float


class Catalog(_Model):
    """The validated catalog, with the lookups the engine makes per run.

    A catalog without ``plans`` judges access only (from the subscription status)
    and features only from Stripe Entitlements; ``default_plan`` is then just a
    name. Build one with :func:`load_catalog` or :meth:`Catalog.builtin`.

    Nothing changes after validation, so one instance serves every thread
    without a lock.
    """

    plans: dict[Name, PlanSpec] = Field(default_factory=dict)
    default_plan: Name = "free"
    access: dict[SubscriptionStatus, AccessPolicy] = Field(
        default_factory=dict, validate_default=True
    )
    grace_access: Access = Access.GRANTED
    steps: dict[RuleKey, StepRule] = Field(default_factory=dict)
    owners: list[Owner] = Field(default_factory=list)
    links: dict[Name, LinkTemplate] = Field(default_factory=dict)
    webhook_deadline: Duration = DEFAULT_WEBHOOK_DEADLINE

    _by_price: dict[str, str] = PrivateAttr(default_factory=dict)
    _by_lookup_key: dict[str, str] = PrivateAttr(default_factory=dict)
    _by_product: dict[str, str] = PrivateAttr(default_factory=dict)
    _features: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)
    _rules: dict[str, ResolvedRule] = PrivateAttr(default_factory=dict)
    _access_rule: ResolvedRule | None = PrivateAttr(default=None)
    _quiet_rule: ResolvedRule | None = PrivateAttr(default=None)
    _owner_patterns: list[tuple[re.Pattern[str], Owner]] = PrivateAttr(
        default_factory=list
    )

    @field_validator("access")
    @classmethod
    def _merge_access(cls, value: dict[str, AccessPolicy]) -> dict[str, AccessPolicy]:
        return {**DEFAULT_ACCESS, **value}

    @model_validator(mode="after")
    def _check_across_fields(self) -> Catalog:
        problems = _cross_field_problems(self)
        if problems:
            raise PydanticCustomError(
                "catalog_inconsistent",
                "; ".join(
                    f"{'.'.join(map(str, at))}: {text}" for at, text, _ in problems
                ),
                {"problems": problems},
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Compute the lookup tables once, so per-run lookups are dictionary reads."""
        for name, plan in self.plans.items():
            self._by_price.update(dict.fromkeys(plan.prices, name))
            self._by_lookup_key.update(dict.fromkeys(plan.lookup_keys, name))
            self._by_product.update(dict.fromkeys(plan.products, name))
            self._features[name] = frozenset(plan.features)

        default = self.steps.get(_DEFAULT_RULE_KEY, StepRule())
        self._access_rule = self._resolve(default, None, inherit=True)
        self._quiet_rule = self._resolve(default, None, inherit=False)
        for key, rule in self.steps.items():
            if key != _DEFAULT_RULE_KEY:
                inherit = key in ACCESS_EVENT_TYPES
                self._rules[key] = self._resolve(default, rule, inherit=inherit)

        self._owner_patterns = [
            (re.compile(translate(owner.match)), owner) for owner in self.owners
        ]

    @classmethod
    def builtin(cls) -> Catalog:
        """Return the catalog used when no file is given: no plans, default rules."""
        return cls()

    @property
    def has_plans(self) -> bool:
        """Whether plans are defined, so plans and features can be judged."""
        return bool(self.plans)

    def policy_for(self, status: str) -> AccessPolicy | None:
        """Return what a subscription status means for access; ``None`` if unknown."""
        return self.access.get(status)

    def rule_for(self, event_type: str) -> ResolvedRule:
        """Return the required steps and deadlines of an event type.

        An entry for the event type is merged over ``default``. Event types that
        imply no change of access (``invoice.payment_failed``,
        ``customer.subscription.trial_will_end``, unknown ones) require only the
        steps their own entry lists, none beyond the webhook otherwise.
        """
        rule = self._rules.get(event_type)
        if rule is not None:
            return rule
        fallback = (
            self._access_rule if event_type in ACCESS_EVENT_TYPES else self._quiet_rule
        )
        assert fallback is not None
        return fallback

    def owner_for(self, event_type: str) -> Owner | None:
        """Return the first owner whose pattern matches the event type."""
        for pattern, owner in self._owner_patterns:
            if pattern.match(event_type):
                return owner
        return None

    def plan_for(
        self,
        price_ids: Iterable[str],
        lookup_keys: Iterable[str] = (),
        product_ids: Iterable[str] = (),
    ) -> tuple[str | None, tuple[str, ...]]:
        """Return the plan these Stripe ids buy, and the ids that map to nothing.

        Price ids decide first, then lookup keys, then product ids; within one
        kind the first id that maps wins. When none maps, the unmapped ids are
        those of the most precise kind given (prices, else lookup keys, else
        products). A catalog without plans maps nothing and reports nothing.
        """
        match = self.match_plan(price_ids, lookup_keys, product_ids)
        return match.plan, () if match.plan else match.ids

    def match_plan(
        self,
        price_ids: Iterable[str],
        lookup_keys: Iterable[str] = (),
        product_ids: Iterable[str] = (),
    ) -> PlanMatch:
        """Return :meth:`plan_for`'s answer with the kind of id that decided it."""
        if not self.plans:
            return PlanMatch(None, "price", ())

        levels = (
            ("price", tuple(price_ids)),
            ("lookup key", tuple(lookup_keys)),
            ("product", tuple(product_ids)),
        )
        for kind, ids in levels:
            if not ids:
                continue
            table = self._table_of(kind)
            for key in ids:
                plan = table.get(key)
                if plan is not None:
                    return PlanMatch(plan, kind, (key,))

        kind, ids = next(((kind, ids) for kind, ids in levels if ids), ("price", ()))
        return PlanMatch(None, kind, ids)

    def _table_of(self, kind: str) -> dict[str, str]:
        """The plan of each id of one kind.

        Reading a private attribute of a pydantic model is slow, and this runs for
        every run, so :meth:`match_plan` reads only the tables of kinds it is given.
        """
        if kind == "price":
            return self._by_price
        if kind == "lookup key":
            return self._by_lookup_key
        return self._by_product

    def features_of(self, plan: str) -> frozenset[str]:
        """Return the features a plan unlocks; empty for a plan the catalog lacks."""
        return self._features.get(plan, frozenset())

    def knows_plan(self, plan: str) -> bool:
        """Return whether the catalog defines a plan of this name."""
        return plan in self._features

    def link(self, name: str, **values: object) -> str | None:
        """Fill the link template ``name``; ``None`` without it or a value it needs.

        Values are percent-encoded; booleans are written ``true`` / ``false``.
        """
        template = self.links.get(name)
        if template is None:
            return None

        needed = _placeholders(template)
        if any(values.get(key) is None for key in needed):
            return None
        return template.format(**{key: _url_value(values[key]) for key in needed})

    def _resolve(
        self, default: StepRule, rule: StepRule | None, *, inherit: bool
    ) -> ResolvedRule:
        required: Iterable[Step] = DEFAULT_REQUIRED if inherit else ()
        if inherit and default.required is not None:
            required = default.required
        if rule is not None and rule.required is not None:
            required = rule.required

        deadlines = {**DEFAULT_DEADLINES, **default.deadlines}
        if rule is not None:
            deadlines.update(rule.deadlines)
        return ResolvedRule(
            required=frozenset(required),
            deadlines=MappingProxyType(deadlines),
            webhook_deadline=self.webhook_deadline,
        )


_Problem = tuple[tuple[str | int, ...], str, object]


def _cross_field_problems(catalog: Catalog) -> list[_Problem]:
    problems: list[_Problem] = []
    if catalog.plans and catalog.default_plan not in catalog.plans:
        known = ", ".join(sorted(catalog.plans))
        problems.append(
            (
                ("default_plan",),
                f"default plan {catalog.default_plan!r} is not one of the plans "
                f"({known})",
                catalog.default_plan,
            )
        )
    for kind in ("prices", "lookup_keys", "products"):
        problems += _duplicate_ids(catalog.plans, kind)
    return problems


def _duplicate_ids(plans: Mapping[str, PlanSpec], kind: str) -> list[_Problem]:
    owner_of: dict[str, str] = {}
    problems: list[_Problem] = []
    for name, plan in plans.items():
        for index, key in enumerate(getattr(plan, kind)):
            first = owner_of.setdefault(key, name)
            if first != name:
                problems.append(
                    (
                        ("plans", name, kind, index),
                        f"{key!r} is listed in plan {first!r} and in plan {name!r}; "
                        f"one id must buy one plan",
                        key,
                    )
                )
    return problems


def _url_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return quote(str(value), safe="")


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a catalog file, or raise :class:`CatalogError`.

    The error's message has one line per problem, each naming the file, the line
    where it can be found, the field path and the offending value.
    """
    path = Path(path)
    text = _read(path)
    node, data = _parse(path, text)

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CatalogError(
            [f"{path}:1: the catalog must be a mapping of keys like plans and steps"]
        )

    problems = _duplicate_keys(path, node)
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as error:
        problems += _describe(path, node, error)
    if problems:
        raise CatalogError(problems)
    return catalog


def check_config(path: str | Path) -> list[str]:
    """Return the problems of a catalog file, one line each; empty when it is fine."""
    try:
        load_catalog(path)
    except CatalogError as error:
        return error.problems
    return []


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError([f"{path}: catalog file not found"]) from None
    except UnicodeDecodeError as error:
        raise CatalogError([f"{path}: not UTF-8 text ({error.reason})"]) from None
    except OSError as error:
        raise CatalogError([f"{path}: cannot read: {error.strerror}"]) from None


def _parse(path: Path, text: str) -> tuple[yaml.Node | None, object]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CatalogError(
            [f"{path}{line}: YAML syntax error: {error.problem or error}"]
        ) from None
    except yaml.YAMLError as error:
        raise CatalogError([f"{path}: YAML syntax error: {error}"]) from None
    return node, data


def _duplicate_keys(path: Path, root: yaml.Node | None) -> list[str]:
    problems: list[tuple[int, str]] = []
    stack: list[tuple[yaml.Node, tuple[object, ...]]] = []
    if root is not None:
        stack.append((root, ()))
    while stack:
        node, at = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key, value in node.value:
                if key.value in seen:
                    line = key.start_mark.line + 1
                    where = _field_path((*at, key.value))
                    text = f"duplicate key {key.value!r} (YAML keeps only the last)"
                    problems.append((line, f"{path}:{line}: {where}: {text}"))
                seen.add(key.value)
                stack.append((value, (*at, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, (*at, index)) for index, item in enumerate(node.value)]
    return [text for _, text in sorted(problems)]


def _describe(path: Path, root: yaml.Node | None, error: ValidationError) -> list[str]:
    lines: list[str] = []
    for item in error.errors():
        context = item.get("ctx") or {}
        if item["type"] == "catalog_inconsistent":
            for at, text, value in context["problems"]:
                lines.append(_line(path, root, tuple(at), text, value))
            continue
        loc = tuple(item["loc"])
        text, value = _message(item)
        lines.append(_line(path, root, loc, text, value))
    return lines


_NO_VALUE: Final = object()


def _message(item: Mapping[str, Any]) -> tuple[str, object]:
    kind = item["type"]
    loc = item["loc"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}", _NO_VALUE
    if kind == "missing":
        return "required key is missing", _NO_VALUE
    text = str(item["msg"]).removeprefix("Value error, ")
    return text, item.get("input", _NO_VALUE)


def _line(
    path: Path, root: yaml.Node | None, loc: tuple[Any, ...], text: str, value: object
) -> str:
    node = _node_at(root, loc)
    where = f":{node.start_mark.line + 1}" if node is not None else ""
    field = _field_path(loc) or "(top level)"
    shown = "" if value is _NO_VALUE else _short(value)
    got = f" (got {shown})" if shown and shown not in text else ""
    return f"{path}{where}: {field}: {text}{got}"


def _node_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """Return the deepest YAML node along a pydantic error location.

    ``None`` when not even the first part is in the file (a default was wrong).
    """
    node = root
    for index, part in enumerate(loc):
        if part == "[key]":
            break
        child = _child(node, part, key_node=loc[index + 1 : index + 2] == ("[key]",))
        if child is None:
            return node if index else None
        node = child
    return node


def _child(node: yaml.Node | None, part: object, *, key_node: bool) -> yaml.Node | None:
    found: yaml.Node | None = None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                found = key if key_node else value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        found = node.value[part] if 0 <= part < len(node.value) else None
    return found


def _field_path(loc: Iterable[object]) -> str:
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in str(part):
            text += f"[{str(part)!r}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
