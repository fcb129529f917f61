"""No secret or personal value reaches an exported span, through any entry point."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import accessproof
from accessproof.redact import luhn_valid
from tests.library.library_helpers import (
    WEBHOOK_SECRET,
    event,
    make_spans,
    signed,
    subscription,
)

_ALNUM = string.ascii_letters + string.digits


def _with_check_digit(body: str) -> str:
    return next(body + digit for digit in string.digits if luhn_valid(body + digit))


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    body = draw(st.text(string.digits, min_size=length - 1, max_size=length - 1))
    digits = _with_check_digit(body)
    separator = draw(st.sampled_from(["", " ", "-"]))
    groups = [digits[index : index + 4] for index in range(0, len(digits), 4)]
    return separator.join(groups)


def _token(min_size: int) -> st.SearchStrategy[str]:
    return st.text(_ALNUM, min_size=min_size, max_size=24)


_keys = st.builds(
    "{}{}".format,
    st.sampled_from(["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"]),
    _token(8),
)
_client_secrets = st.builds(
    "{}_{}_secret_{}".format,
    st.sampled_from(["pi", "seti", "cs"]),
    _token(6),
    _token(6),
)
_bearer = st.builds("Bearer {}".format, _token(12))
_emails = st.builds(
    "{}@{}.{}".format,
    _token(1),
    _token(1),
    st.text(string.ascii_lowercase, min_size=2, max_size=6),
)
_ips = st.builds("{}.{}.{}.{}".format, *[st.integers(min_value=0, max_value=255)] * 4)

HOSTILE = st.one_of(card_numbers(), _keys, _client_secrets, _bearer, _emails, _ips)


@st.composite
def hidden(draw: st.DrawFn) -> tuple[str, str]:
    """A hostile value, and the text it hides in."""
    value = draw(HOSTILE)
    prefix = draw(st.sampled_from(["", "ref ", "note: "]))
    suffix = draw(st.sampled_from(["", " end", ";"]))
    return value, f"{prefix}{value}{suffix}"


class AppError(Exception):
    """An app exception whose message carries the hostile value."""


def _hostile_event(text: str) -> dict[str, Any]:
    sub = subscription(
        customer=text,
        status=text,
        price=text,
        lookup_key=text,
        metadata={"email": text, "accessproof_drill": text},
    )
    sub["id"] = "sub_" + text
    sub["description"] = text
    return event(sub, event_id="evt_" + text, event_type=text)


def _exercise(text: str, provider: Any) -> list[dict[str, str]]:
    body, header = signed(_hostile_event(text))
    opened = accessproof.verify_and_open(
        body, header, WEBHOOK_SECRET, tracer_provider=provider
    )
    clean = accessproof.open_run(
        event(subscription(metadata={"note": text})), tracer_provider=provider
    )
    hostile_carrier = {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": f"vendor={text}",
        "baggage": f"stripe.event.id={text}",
        "accessproof-drill": text,
    }
    for run in (
        opened,
        clean,
        accessproof.resume("evt_1Hostile", hostile_carrier, tracer_provider=provider),
        accessproof.resume(text, {"traceparent": text}, tracer_provider=provider),
    ):
        _every_step(run, text)
    return [opened.carrier(), clean.carrier()]


def _every_step(run: accessproof.Run, text: str) -> None:
    with run.step(text):
        pass
    with run.step("reconcile") as step:
        step.record(status=text, plan=text, card=text)
    with run.step("entitlement") as step:
        step.observe(plan=text, features=["api", text], access=text)
    with run.step("notify") as step:
        step.record(channel=text, template=text, email=text)
    try:
        with run.step("notify"):
            raise AppError(text)
    except AppError:
        pass


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(hidden())
def test_hostile_values_never_reach_an_exported_span(case: tuple[str, str]) -> None:
    """Cards, keys, client secrets, tokens, emails and IPs stay out of every span."""
    value, text = case
    pipeline = make_spans()

    carriers = _exercise(text, pipeline.provider)

    exported = pipeline.finished()
    assert exported
    for span in exported:
        assert value not in span.to_json()
    for carrier in carriers:
        assert value not in json.dumps(carrier)
    pipeline.provider.shutdown()
