"""The one allow-list of attribute keys, and the value scrubber behind it.

Both halves use this module: the library before anything enters a span, and the
engine before anything enters its store, so an app that skipped the library still
cannot leak a card number into accessproof.

A key outside :data:`ALLOWED_KEYS` is dropped. A value is dropped whole when any
part of it looks like a secret or personal data (see :func:`is_sensitive`); the
caller logs a warning naming the key, never the value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Final

from accessproof.conventions import RESOURCE_KEYS, Attr

AttributeValue = str | bool | int | float | Sequence[str]

#: Every attribute key that may travel on a span of a run, or be stored by the engine.
ALLOWED_KEYS: Final[frozenset[str]] = frozenset(
    value
    for name, value in vars(Attr).items()
    if not name.startswith("_") and isinstance(value, str)
) | frozenset(RESOURCE_KEYS)

#: Longest string kept; ids, plan names and status words are far shorter.
MAX_STRING_LENGTH: Final = 256
#: Most elements kept in one list attribute.
MAX_SEQUENCE_LENGTH: Final = 64

#: 13 to 19 digits, single spaces or dashes allowed between them, not glued to a
#: letter or digit on the left: hex and base62 ids hold long digit runs after a
#: letter, and a card number after ``_`` or punctuation is still caught.
_CARD_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){12,18}(?!\d)")
#: Not after a letter or digit: a key glued to an id by ``_`` is still a key.
_START = r"(?<![0-9A-Za-z])"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1?\d?\d)"
_SECRET_PATTERNS = re.compile(
    "|".join(
        (
            # secret and restricted API keys
            _START + r"[sr]k_(?:live|test)_[0-9A-Za-z]{6,}",
            # webhook signing secrets
            _START + r"whsec_[0-9A-Za-z+/=]{6,}",
            # payment intent, setup intent and checkout client secrets
            r"_secret_[0-9A-Za-z]{4,}",
            # bearer tokens in any header-like text
            r"(?i:(?<![0-9a-z])bearer\s+\S{8,})",
            # JSON web tokens
            _START + r"eyJ[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]{8,}",
            # email addresses
            r"[0-9A-Za-z._%+-]+@[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*\.[A-Za-z]{2,}",
            # IPv4 addresses
            rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\d.])",
        )
    )
)


def luhn_valid(digits: str) -> bool:
    """Return whether a string of digits passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _has_card_number(text: str) -> bool:
    for match in _CARD_CANDIDATE.finditer(text):
        digits = match.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


#: Stripe object ids (``evt_1Nx...``, ``cus_Q...``): one underscore, no secret
#: prefix, no run of digits long enough to be a card number. The engine meets
#: thousands a second, so they skip the full scan.
_PLAIN_ID = re.compile(r"(?!whsec_)[a-z]{1,12}_(?![0-9A-Za-z]*\d{13})[0-9A-Za-z]{1,64}")


#: Longest text scanned; anything longer is treated as sensitive and dropped
#: unread, so a stack trace stuffed into an attribute cannot stall the engine.
MAX_SCANNED_LENGTH: Final = 4 * MAX_STRING_LENGTH


def is_sensitive(text: str) -> bool:
    """Return whether text holds a card number, a secret, a token or an email.

    Text longer than :data:`MAX_SCANNED_LENGTH` counts as sensitive.
    """
    if len(text) > MAX_SCANNED_LENGTH:
        return True
    return _remembered(text) if len(text) <= 80 else _scan(text)


def _scan(text: str) -> bool:
    if _PLAIN_ID.fullmatch(text):
        return False
    return _SECRET_PATTERNS.search(text) is not None or _has_card_number(text)


#: Short values repeat (ids on every span of a run, statuses, plans, event
#: types): remember the verdict of the most recent ones.
_remembered = functools.lru_cache(maxsize=16384)(_scan)


def clean_value(value: object) -> AttributeValue | None:
    """Return an attribute value safe to export, or ``None`` to drop it.

    Accepts what OpenTelemetry accepts (str, bool, int, float and homogeneous
    sequences of str); strings are cut to :data:`MAX_STRING_LENGTH` and sequences
    to :data:`MAX_SEQUENCE_LENGTH`. Anything sensitive or of another type is
    dropped whole.
    """
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if is_sensitive(value):
            return None
        return value[:MAX_STRING_LENGTH]
    if isinstance(value, Sequence | frozenset | set) and not isinstance(
        value, bytes | bytearray
    ):
        items: list[str] = []
        for item in value:
            if not isinstance(item, str) or is_sensitive(item):
                return None
            items.append(item[:MAX_STRING_LENGTH])
        return tuple(items[:MAX_SEQUENCE_LENGTH])
    return None


def clean_attributes(
    attributes: Mapping[str, object],
) -> tuple[dict[str, AttributeValue], list[str]]:
    """Split attributes into the ones safe to export and the keys that were dropped.

    A key is dropped when it is not on the allow-list, when its value is ``None``,
    or when :func:`clean_value` refuses the value.
    """
    kept: dict[str, AttributeValue] = {}
    dropped: list[str] = []
    for key, value in attributes.items():
        if value is None:
            continue
        cleaned = clean_value(value) if key in ALLOWED_KEYS else None
        if cleaned is None:
            dropped.append(key)
        else:
            kept[key] = cleaned
    return kept, dropped
