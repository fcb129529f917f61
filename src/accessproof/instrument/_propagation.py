"""Carry a run into another process: W3C trace context, baggage and the drill mode.

The carrier is a plain ``dict[str, str]`` an app puts in its job payload. It holds
``traceparent`` (and ``tracestate`` when there is one), ``baggage`` with only the
Stripe event id, and :data:`DRILL_CARRIER_KEY` for drill runs. The W3C
propagators are used directly, whatever the app configured globally, so the
carrier reads the same in every worker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceState
from opentelemetry.trace.propagation.tracecontext import (
    TraceContextTextMapPropagator,
)

from accessproof.conventions import DRILL_CARRIER_KEY, Attr, DrillMode
from accessproof.redact import is_sensitive

logger = logging.getLogger(__name__)

_TRACE_CONTEXT = TraceContextTextMapPropagator()
_BAGGAGE = W3CBaggagePropagator()


@dataclass(frozen=True, slots=True)
class Carried:
    """What a worker learns from a carrier; every field may be missing."""

    span_context: SpanContext | None = None
    drill_mode: DrillMode | None = None
    event_id: str | None = None


def inject(
    event_id: str, span_context: SpanContext | None, drill_mode: DrillMode | None
) -> dict[str, str]:
    """Return the carrier for a run whose latest span is ``span_context``.

    The carrier starts from an empty context, so none of the app's own baggage
    travels with it.
    """
    context = Context()
    if span_context is not None and span_context.is_valid:
        context = trace.set_span_in_context(NonRecordingSpan(span_context), context)
    if event_id and not is_sensitive(event_id):
        context = baggage.set_baggage(Attr.EVENT_ID, event_id, context)

    carrier: dict[str, str] = {}
    _TRACE_CONTEXT.inject(carrier, context=context)
    _BAGGAGE.inject(carrier, context=context)
    if drill_mode is not None:
        carrier[DRILL_CARRIER_KEY] = drill_mode.value
    return carrier


def extract(carrier: Mapping[str, str]) -> Carried:
    """Read a carrier back; anything malformed is left out, never raised."""
    text = {
        k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)
    }
    context = _BAGGAGE.extract(text, context=_TRACE_CONTEXT.extract(text))
    span_context = trace.get_current_span(context).get_span_context()
    event_id = baggage.get_baggage(Attr.EVENT_ID, context)
    return Carried(
        span_context=_without_sensitive_state(span_context)
        if span_context.is_valid
        else None,
        drill_mode=_drill_mode(text.get(DRILL_CARRIER_KEY)),
        event_id=event_id if isinstance(event_id, str) else None,
    )


def _without_sensitive_state(span_context: SpanContext) -> SpanContext:
    """Drop the trace state when any entry looks sensitive: links export it."""
    state = span_context.trace_state
    if not any(is_sensitive(f"{key}={value}") for key, value in state.items()):
        return span_context
    logger.warning("accessproof: dropped a tracestate that looked sensitive")
    return SpanContext(
        span_context.trace_id,
        span_context.span_id,
        is_remote=True,
        trace_flags=span_context.trace_flags,
        trace_state=TraceState(),
    )


def _drill_mode(value: str | None) -> DrillMode | None:
    if value is None:
        return None
    try:
        return DrillMode(value)
    except ValueError:
        logger.warning(
            "accessproof: unknown drill mode in the carrier, treated as %s",
            DrillMode.HEALTHY.value,
        )
        return DrillMode.HEALTHY
