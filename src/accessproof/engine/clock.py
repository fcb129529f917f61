"""Time, injected: the engine never reads the wall clock itself."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of the current time in unix nanoseconds."""

    def now_ns(self) -> int: ...


class SystemClock:
    """The wall clock."""

    def now_ns(self) -> int:
        return time.time_ns()


class FakeClock:
    """A clock that moves only when told to; for tests and replays.

    >>> clock = FakeClock(1_000)
    >>> clock.advance(2.5)
    >>> clock.now_ns()
    2500001000
    """

    def __init__(self, start_ns: int = 1_700_000_000 * 1_000_000_000) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += int(seconds * 1_000_000_000)

    def set(self, now_ns: int) -> None:
        """Jump to ``now_ns``."""
        self._now = now_ns
