"""OTLP spans in, evidence records out.

This is the engine's hot path: every span received passes through
:func:`evidence_from_request`. It touches only the attributes on the allow-list,
scrubs their values with the same rules as the library, and builds plain slotted
records (no validation framework per span).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from accessproof.conventions import RESOURCE_KEYS, Attr, Step
from accessproof.redact import (
    ALLOWED_KEYS,
    MAX_SEQUENCE_LENGTH,
    MAX_STRING_LENGTH,
    AttributeValue,
    clean_value,
    is_sensitive,
)

logger = logging.getLogger(__name__)

_STATUS_ERROR = 2
#: Stripe event ids: ``evt_`` and letters, digits or underscores (test helpers use
#: underscores). Anything else never becomes a run, so it never reaches a command
#: shown to an operator.
_EVENT_ID = re.compile(r"evt_[0-9A-Za-z_]{1,200}")
_STEPS = {step.value: step for step in Step}
_RESOURCE_KEYS = frozenset(RESOURCE_KEYS)


class Rejection(StrEnum):
    """Why a span that claimed to be a run's could not be used.

    The value is the ``reason`` label of ``accessproof_spans_rejected_total``;
    :attr:`message` is what the client is told in a partial success.
    """

    INVALID_EVENT_ID = "invalid_event_id"
    UNKNOWN_STEP = "unknown_step"
    INVALID_IDS = "invalid_ids"
    INVALID_TIME = "invalid_time"

    @property
    def message(self) -> str:
        return _REJECTION_MESSAGES[self]


_REJECTION_MESSAGES = {
    Rejection.INVALID_EVENT_ID: "stripe.event.id is not a Stripe event id (evt_...)",
    Rejection.UNKNOWN_STEP: "accessproof.step is missing or not a known step",
    Rejection.INVALID_IDS: "trace or span id has the wrong length",
    Rejection.INVALID_TIME: "start or end time is missing or past the year 2200",
}

#: Latest span time accepted, in unix nanoseconds (the year 2200): later ones are
#: garbage and would overflow the store's 64-bit deadlines.
_MAX_TIME_NS = 7_258_118_400 * 1_000_000_000


@dataclass(slots=True)
class SpanEvidence:
    """One span of a run, reduced to what the verdict needs.

    ``trace_id`` and ``span_id`` are lowercase hex; times are unix nanoseconds.
    ``attributes`` holds only allow-listed, scrubbed span attributes and
    ``resource`` only the deploy attributes of :data:`RESOURCE_KEYS`.
    """

    event_id: str
    step: Step
    trace_id: str
    span_id: str
    start_ns: int
    end_ns: int
    ok: bool
    error_type: str | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)

    @property
    def drill(self) -> bool:
        return self.attributes.get(Attr.DRILL) is True


@dataclass(slots=True)
class Decoded:
    """What one export request held: evidence, and counts of what was left out.

    ``ignored`` counts spans without ``stripe.event.id`` (not ours: accepted and
    dropped). ``rejected`` counts spans that claimed to be a run's but could not be
    used, by reason; they are reported back to the client as a partial success.
    """

    evidence: list[SpanEvidence] = field(default_factory=list)
    ignored: int = 0
    rejected: dict[Rejection, int] = field(default_factory=dict)
    redacted: int = 0

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: Rejection) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def rejection_message(self) -> str:
        parts = (
            f"{count} with {reason.message}"
            for reason, count in sorted(self.rejected.items())
        )
        return f"rejected {self.rejected_count} spans: " + "; ".join(parts)


def _any_value(value: Any) -> object:
    """Convert an OTLP ``AnyValue`` to a Python value, or ``None`` when unusable."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        items = [_any_value(item) for item in value.array_value.values]
        return items if all(isinstance(item, str) for item in items) else None
    return None


def _clean_any(value: Any) -> AttributeValue | None:
    """:func:`clean_value` of an ``AnyValue``, reading the one field that is set."""
    kind = value.WhichOneof("value")
    cleaned: AttributeValue | None = None
    if kind == "string_value":
        text: str = value.string_value
        cleaned = None if is_sensitive(text) else text[:MAX_STRING_LENGTH]
    elif kind == "bool_value":
        cleaned = value.bool_value
    elif kind == "int_value":
        cleaned = value.int_value
    elif kind == "double_value":
        cleaned = value.double_value
    elif kind == "array_value":
        cleaned = _clean_strings(value.array_value.values)
    return cleaned


def _clean_strings(values: Iterable[Any]) -> tuple[str, ...] | None:
    """:func:`clean_value` of an array: strings only, none of them sensitive.

    Reads each element once instead of converting the array and then cleaning the
    list, which matters because ``price_ids`` and the features travel on most runs.
    """
    items: list[str] = []
    for item in values:
        if item.WhichOneof("value") != "string_value":
            return None
        text: str = item.string_value
        if is_sensitive(text):
            return None
        items.append(text[:MAX_STRING_LENGTH])
    return tuple(items[:MAX_SEQUENCE_LENGTH])


def _resource_attributes(attributes: Iterable[Any]) -> dict[str, str]:
    resource: dict[str, str] = {}
    for kv in attributes:
        if kv.key in _RESOURCE_KEYS:
            value = clean_value(_any_value(kv.value))
            if isinstance(value, str):
                resource[kv.key] = value
    return resource


def evidence_from_request(request: ExportTraceServiceRequest) -> Decoded:
    """Turn one OTLP trace export request into evidence."""
    decoded = Decoded()
    for resource_spans in request.resource_spans:
        resource: dict[str, str] | None = None
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = _span_attributes(decoded, span.attributes)
                event_id = attributes.get(Attr.EVENT_ID)
                if event_id is None:
                    decoded.ignored += 1
                    continue
                if resource is None:
                    resource = _resource_attributes(resource_spans.resource.attributes)
                _append(decoded, span, attributes, event_id, resource)
    return decoded


def _span_attributes(
    decoded: Decoded, key_values: Iterable[Any]
) -> dict[str, AttributeValue]:
    """The allow-listed attributes of one span, scrubbed; count what was dropped.

    This loop runs for every attribute of every span, so string values (most of
    them) are cleaned inline rather than through :func:`clean_value`, with the
    same rules.
    """
    attributes: dict[str, AttributeValue] = {}
    for kv in key_values:
        key = kv.key
        if key not in ALLOWED_KEYS:
            continue
        value = kv.value
        # A non-empty string can only be a string value; knowing that saves the
        # WhichOneof call, the costliest step for the most common attribute.
        text: str = value.string_value
        cleaned: AttributeValue | None
        if text:
            cleaned = None if is_sensitive(text) else text[:MAX_STRING_LENGTH]
        else:
            cleaned = _clean_any(value)
        if cleaned is None:
            decoded.redacted += 1
        else:
            attributes[key] = cleaned
    return attributes


def _append(
    decoded: Decoded,
    span: Any,
    attributes: dict[str, AttributeValue],
    event_id: AttributeValue,
    resource: dict[str, str],
) -> None:
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        decoded.reject(Rejection.INVALID_EVENT_ID)
        return
    step = _STEPS.get(str(attributes.get(Attr.STEP)))
    if step is None:
        decoded.reject(Rejection.UNKNOWN_STEP)
        return
    # Each read of a protobuf field builds a new Python object: read each once.
    trace_id: bytes = span.trace_id
    span_id: bytes = span.span_id
    if len(trace_id) != 16 or len(span_id) != 8:
        decoded.reject(Rejection.INVALID_IDS)
        return
    start_ns: int = span.start_time_unix_nano
    end_ns: int = span.end_time_unix_nano or start_ns
    if not 0 < end_ns <= _MAX_TIME_NS or start_ns > _MAX_TIME_NS:
        decoded.reject(Rejection.INVALID_TIME)
        return
    ok = span.status.code != _STATUS_ERROR
    error_type = attributes.get(Attr.ERROR_TYPE)
    decoded.evidence.append(
        SpanEvidence(
            event_id=event_id,
            step=step,
            trace_id=trace_id.hex(),
            span_id=span_id.hex(),
            start_ns=start_ns,
            end_ns=end_ns,
            ok=ok,
            error_type=None if ok else str(error_type or "error"),
            attributes=attributes,
            resource=resource,
        )
    )
