"""The engine inside an asyncio server: one worker thread, bounded intake.

:class:`EngineService` is the :class:`~accessproof.engine.intake.EvidenceSink`
the receivers deliver to. Every call into the engine runs on one dedicated
thread, so the engine needs no locks and the event loop never blocks on the
store. When more requests are waiting than ``max_pending`` the service pushes
back with :class:`~accessproof.engine.intake.Overloaded` instead of queueing
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from accessproof.engine.engine import Engine
from accessproof.engine.evidence import Decoded
from accessproof.engine.intake import Overloaded

logger = logging.getLogger(__name__)

T = TypeVar("T")


class EngineService:
    """Runs an :class:`Engine` on one thread and ticks it in the background."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_pending: int = 64,
        tick_interval: float = 0.25,
        retry_after: float = 1.0,
    ) -> None:
        self.engine = engine
        self.max_pending = max_pending
        self.tick_interval = tick_interval
        self.retry_after = retry_after
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="accessproof-engine")
        self._pending = 0
        self._ticker: asyncio.Task[None] | None = None
        self.ready = False

    async def accept(self, decoded: Decoded, transport: str) -> None:
        """Store the evidence durably, or raise Overloaded when too much is waiting."""
        if self._pending >= self.max_pending:
            raise Overloaded(self.retry_after, "too many export requests in flight")
        self._pending += 1
        try:
            await self.call(self.engine.ingest, decoded, transport)
        finally:
            self._pending -= 1

    async def call(self, function: Callable[..., T], *args: object) -> T:
        """Run ``function(*args)`` on the engine thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def start(self) -> None:
        """Start ticking deadlines in the background."""
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
        self.ready = True

    async def stop(self) -> None:
        """Stop ticking and wait for the engine thread to finish its work."""
        self.ready = False
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._executor.shutdown(wait=True)

    async def _tick_forever(self) -> None:
        while True:
            try:
                fired = await self.call(self.engine.tick)
                if fired:
                    logger.debug("tick fired %d deadlines", fired)
            except Exception:
                logger.exception("tick failed; retrying")
            await asyncio.sleep(self.tick_interval)
