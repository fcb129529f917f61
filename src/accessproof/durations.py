"""Durations as the catalog spells them: ``"60s"``, ``"15m"``, ``"1h"``, ``"2d"``.

A bare number (or a numeric string) is a number of seconds. Every duration is
stored as float seconds and must be finite and greater than zero.
"""

from __future__ import annotations

import math
import re
from typing import Final

#: Seconds in one of each unit a duration may carry.
UNIT_SECONDS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_PATTERN = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([smhd]?)\s*")


def parse_duration(value: object) -> float:
    """Return a duration in seconds, or raise ``ValueError`` naming what is wrong.

    Accepts an int or float of seconds, or a string of a number and an optional
    unit (``s``, ``m``, ``h``, ``d``). Booleans are refused: YAML reads ``yes``
    as ``True``, which is never a duration someone meant.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(
            f"a duration is a number of seconds or a string like '60s', '15m', "
            f"'1h', '2d', not {value!r}"
        )

    seconds = _seconds(value) if isinstance(value, str) else float(value)

    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be greater than zero, not {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Return the shortest whole-unit spelling of a duration, e.g. ``"15m"``."""
    for unit in ("d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"


def _seconds(text: str) -> float:
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit "
            f"(s, m, h or d), like '60s', '15m', '1h' or '2d'"
        )
    number, unit = match.groups()
    return float(number) * UNIT_SECONDS[unit or "s"]
