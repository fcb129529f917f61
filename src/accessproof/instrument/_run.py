"""Runs and their steps: the spans an app's billing workflow emits.

A :class:`Run` is one Stripe event's journey through the app. Each step is a span
named ``accessproof.<step>`` carrying the event id and the step name; a drill
run's spans also carry the drill flag and mode. Every attribute passes through
:func:`accessproof.redact.clean_attributes` first, and a dropped key is logged at
WARNING by name only.

Telemetry never raises into the app: a failure inside the library is logged at
WARNING and the app's code carries on. Exceptions raised by the app's own code
inside a step pass through unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)

from accessproof.conventions import (
    DRILL_FALSE_PLAN,
    INSTRUMENTATION_NAME,
    SCHEMA_URL,
    Access,
    Attr,
    DrillMode,
    Step,
)
from accessproof.instrument import _propagation
from accessproof.instrument._version import __version__
from accessproof.redact import AttributeValue, clean_attributes

logger = logging.getLogger(__name__)

_RECORDABLE: dict[Step, dict[str, str]] = {
    Step.RECONCILE: {"status": Attr.RECONCILED_STATUS, "plan": Attr.RECONCILED_PLAN},
    Step.NOTIFY: {"channel": Attr.NOTIFY_CHANNEL, "template": Attr.NOTIFY_TEMPLATE},
}


def get_tracer(tracer_provider: TracerProvider | None) -> Tracer:
    """Return the library's tracer from the given provider, or the global one."""
    return trace.get_tracer(
        INSTRUMENTATION_NAME,
        __version__,
        schema_url=SCHEMA_URL,
        tracer_provider=tracer_provider,
    )


def span_name(step: Step) -> str:
    """Return the span name of a step: low cardinality, one per step."""
    return f"{INSTRUMENTATION_NAME}.{step.value}"


def safe_attributes(attributes: Mapping[str, object]) -> dict[str, AttributeValue]:
    """Return the attributes fit to export, warning once per dropped key."""
    kept, dropped = clean_attributes(attributes)
    for key in dropped:
        logger.warning("accessproof: dropped span attribute %s", key)
    return kept


def _warn_failure(action: str, error: Exception) -> None:
    logger.warning(
        "accessproof: %s failed (%s); telemetry skipped", action, type(error).__name__
    )


def qualified_name(kind: type[BaseException]) -> str:
    """Return an exception type's qualified name, without a ``builtins.`` prefix."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


class Run:
    """One Stripe event's journey through the app, identified by its event id.

    Get one from :func:`accessproof.verify_and_open`, :func:`accessproof.open_run`
    or, in a worker, :func:`accessproof.resume`; then wrap each step::

        with run.step("reconcile") as step:
            save_subscription(...)
            step.record(status="active", plan="pro")

    Step spans are children of the app's active span when there is one, and
    otherwise of the first span this run object recorded (the ``webhook`` span in
    the process that opened the run). A resumed run's spans start a trace of
    their own, each with a span link to the span the carrier came from.

    A drill run (the Stripe object's metadata holds ``accessproof_drill``) marks
    every span with ``accessproof.drill`` and ``accessproof.drill.mode``; see
    :class:`StepHandle` for what each mode does to the ``entitlement`` step.

    A run is meant to be used from one thread at a time.
    """

    __slots__ = (
        "_drill_mode",
        "_event",
        "_facts",
        "_last",
        "_link",
        "_parent",
        "_tracer",
    )

    def __init__(
        self,
        event_id: str,
        *,
        tracer: Tracer,
        drill_mode: DrillMode | None = None,
        facts: Mapping[str, AttributeValue] | None = None,
        event: Mapping[str, Any] | None = None,
        link: SpanContext | None = None,
    ) -> None:
        self._tracer = tracer
        self._drill_mode = drill_mode
        self._facts: dict[str, AttributeValue] = dict(facts or {})
        self._facts[Attr.EVENT_ID] = event_id
        self._event = event
        self._link = link
        # The span steps hang under when no app span is active, and the latest
        # span of this run, which the carrier points at.
        self._parent: SpanContext | None = None
        self._last: SpanContext | None = link

    @property
    def event_id(self) -> str:
        """The Stripe event id this run follows (empty when it was unreadable)."""
        return str(self._facts[Attr.EVENT_ID])

    @property
    def event_type(self) -> str | None:
        """The Stripe event type, when the run was opened from the event."""
        value = self._facts.get(Attr.EVENT_TYPE)
        return value if isinstance(value, str) else None

    @property
    def drill_mode(self) -> DrillMode | None:
        """The drill mode, or ``None`` for a real event."""
        return self._drill_mode

    @property
    def event(self) -> Mapping[str, Any] | None:
        """The verified event as plain JSON data; ``None`` in a resumed run."""
        return self._event

    def step(self, name: Step | str) -> StepHandle:
        """Return a context manager whose span is step ``name`` of this run.

        An unknown step name, or a run without an event id, logs a warning and
        returns a handle that records nothing.
        """
        try:
            step = Step(name)
        except ValueError:
            logger.warning("accessproof: unknown step name, nothing recorded")
            return StepHandle(self, None)

        if not self.event_id:
            logger.warning("accessproof: run has no event id, %s not recorded", step)
            return StepHandle(self, None)
        return StepHandle(self, step)

    def carrier(self) -> dict[str, str]:
        """Return the W3C carrier to put in a background job's payload.

        It holds ``traceparent`` of the run's latest span (and ``tracestate``),
        ``baggage`` with only ``stripe.event.id``, and ``accessproof-drill`` with
        the drill mode on drill runs. Pass it to :func:`accessproof.resume`.
        """
        try:
            return _propagation.inject(self.event_id, self._last, self._drill_mode)
        except Exception as error:  # noqa: BLE001 - telemetry must not break billing
            _warn_failure("building the carrier", error)
            return {}

    def _record_webhook(self) -> None:
        """Record the ``webhook`` step now, with the provider facts, as a short span."""
        with self.step(Step.WEBHOOK):
            pass

    def _base_attributes(self, step: Step) -> dict[str, object]:
        attributes: dict[str, object] = {
            Attr.EVENT_ID: self.event_id,
            Attr.STEP: step.value,
        }
        if step is Step.WEBHOOK:
            attributes.update(self._facts)
        if self._drill_mode is not None:
            attributes[Attr.DRILL] = True
            attributes[Attr.DRILL_MODE] = self._drill_mode.value
        return attributes

    def _start_span(self, step: Step) -> Span:
        parent = None
        active = trace.get_current_span().get_span_context()
        if not active.is_valid and self._parent is not None:
            parent = trace.set_span_in_context(NonRecordingSpan(self._parent))
        links = [Link(self._link)] if self._link is not None else None
        span = self._tracer.start_span(
            span_name(step),
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=safe_attributes(self._base_attributes(step)),
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        )
        span_context = span.get_span_context()
        if span_context.is_valid:
            self._last = span_context
            if self._parent is None:
                self._parent = span_context
        return span

    def _skips(self, step: Step) -> bool:
        return (
            step is Step.ENTITLEMENT and self._drill_mode is DrillMode.SKIP_ENTITLEMENT
        )

    def _falsifies(self, step: Step) -> bool:
        return (
            step is Step.ENTITLEMENT
            and self._drill_mode is DrillMode.FALSIFY_ENTITLEMENT
        )


class StepHandle:
    """The span of one step, as a context manager; record what the step did.

    ``record(...)`` takes the step's own keys: ``status`` and ``plan`` on
    ``reconcile`` (the local state written), ``channel`` and ``template`` on
    ``notify`` (never the address). ``observe(...)`` is for ``entitlement``: the
    plan, features and access the app read back from what actually gates access.
    A key the step does not take is dropped with a warning.

    An exception inside the ``with`` block sets the span's status to error with
    the exception's qualified type name as description and ``error.type``, and is
    re-raised unchanged. Its message is not recorded: it may hold customer data.

    Drills change only the ``entitlement`` step: with ``falsify_entitlement``,
    ``observe()`` records the plan ``accessproof-drill-wrong-plan`` instead of
    the one read back (the app's own write still happens); with
    ``skip_entitlement``, the step's span is never started, so nothing is
    exported, while the handle still accepts every call. ``healthy`` changes
    nothing but the drill flags.
    """

    __slots__ = ("_run", "_span", "_step", "_token")

    def __init__(self, run: Run, step: Step | None) -> None:
        self._run = run
        self._step = step
        self._span: Span | None = None
        self._token: object | None = None

    def __enter__(self) -> StepHandle:
        if self._step is None or self._run._skips(self._step):
            return self
        try:
            self._span = self._run._start_span(self._step)
            self._token = otel_context.attach(trace.set_span_in_context(self._span))
        except Exception as error:  # noqa: BLE001 - telemetry must not break billing
            _warn_failure("starting a step span", error)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        try:
            if exc_type is not None:
                _mark_error(span, exc_type)
            span.end()
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]
        except Exception as error:  # noqa: BLE001 - telemetry must not break billing
            _warn_failure("ending a step span", error)

    def record(
        self,
        *,
        status: str | None = None,
        plan: str | None = None,
        channel: str | None = None,
        template: str | None = None,
        **unknown: object,
    ) -> None:
        """Record what the step did; ``None`` values are left out.

        ``status`` and ``plan`` go on ``reconcile``, ``channel`` and ``template``
        on ``notify``; anything else is dropped with a warning.
        """
        given = dict(unknown, status=status, plan=plan)
        given.update(channel=channel, template=template)
        keys = _RECORDABLE.get(self._step, {}) if self._step is not None else {}
        attributes: dict[str, object] = {}
        for name, value in given.items():
            if value is None:
                continue
            if name not in keys:
                logger.warning("accessproof: record() ignored %s on this step", name)
            elif _is_text("record", name, value):
                attributes[keys[name]] = value
        self._set(attributes)

    def observe(
        self,
        *,
        plan: str | None = None,
        features: Iterable[str] | None = None,
        access: Access | str | bool | None = None,
    ) -> None:
        """Record the entitlement the app read back after changing it.

        ``features`` is an iterable of feature names; ``access`` is an
        :class:`~accessproof.Access`, its value, or a bool (``True`` is granted).
        Only the ``entitlement`` step takes it; elsewhere it is dropped with a
        warning.
        """
        if self._step is not Step.ENTITLEMENT:
            if self._step is not None:
                logger.warning("accessproof: observe() belongs on the entitlement step")
            return

        if self._run._falsifies(self._step):
            plan = DRILL_FALSE_PLAN
        if plan is not None and not _is_text("observe", "plan", plan):
            plan = None
        self._set(
            {
                Attr.OBSERVED_PLAN: plan,
                Attr.OBSERVED_FEATURES: _features(features),
                Attr.OBSERVED_ACCESS: _access(access),
            }
        )

    def _set(self, attributes: Mapping[str, object]) -> None:
        span = self._span
        if span is None:
            if self._step is not None and not self._run._skips(self._step):
                logger.warning("accessproof: step values given outside its with block")
            return
        try:
            span.set_attributes(safe_attributes(attributes))
        except Exception as error:  # noqa: BLE001 - telemetry must not break billing
            _warn_failure("setting step attributes", error)


def _mark_error(span: Span, exc_type: type[BaseException]) -> None:
    name = qualified_name(exc_type)
    kept = safe_attributes({Attr.ERROR_TYPE: name})
    description = kept.get(Attr.ERROR_TYPE)
    span.set_attributes(kept)
    span.set_status(
        Status(StatusCode.ERROR, description if isinstance(description, str) else None)
    )


def _is_text(method: str, name: str, value: object) -> bool:
    """Whether a value meant as one word is a string; warn by name if not."""
    if isinstance(value, str):
        return True
    logger.warning(
        "accessproof: %s(%s=) wants a string, not %s; dropped",
        method,
        name,
        type(value).__name__,
    )
    return False


def _features(features: Iterable[str] | None) -> tuple[str, ...] | None:
    if features is None:
        return None
    if isinstance(features, str | bytes):
        logger.warning("accessproof: observe(features=) wants a list, not a string")
        return None
    try:
        names = tuple(features)
    except Exception as error:  # noqa: BLE001 - telemetry must not break billing
        logger.warning(
            "accessproof: observe(features=) is not a list of names (%s); dropped",
            type(error).__name__,
        )
        return None
    if not all(isinstance(name, str) for name in names):
        logger.warning("accessproof: observe(features=) wants names as strings")
        return None
    return names


def _access(access: Access | str | bool | None) -> str | None:
    if access is None:
        return None
    if isinstance(access, bool):
        return (Access.GRANTED if access else Access.REVOKED).value
    try:
        return Access(access).value
    except ValueError:
        logger.warning("accessproof: observe(access=) must be granted or revoked")
        return None


def resume(
    event_id: str,
    carrier: Mapping[str, str] | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> Run:
    """Continue a run in another process, such as a queue worker.

    The event id alone is enough: the engine joins steps by it. With the
    carrier from :meth:`Run.carrier`, each step span also links to the span the
    carrier came from, and a drill run stays a drill. A malformed carrier is
    ignored with a warning; this never raises.
    """
    carried = _propagation.Carried()
    if carrier:
        try:
            carried = _propagation.extract(carrier)
        except Exception as error:  # noqa: BLE001 - telemetry must not break billing
            _warn_failure("reading the carrier", error)
    if carried.event_id is not None and carried.event_id != event_id:
        logger.warning("accessproof: carrier baggage names another event id")
    if not isinstance(event_id, str):
        logger.warning("accessproof: resume() needs the event id as a string")
        event_id = ""

    return Run(
        event_id,
        tracer=get_tracer(tracer_provider),
        drill_mode=carried.drill_mode,
        link=carried.span_context,
    )
