"""The contract between the receivers and the engine.

Receivers decode OTLP into :class:`~accessproof.engine.evidence.Decoded` and hand
it to an :class:`EvidenceSink`. The sink answers only once the evidence is
durable, or raises :class:`Overloaded` so the receiver can ask the client to retry.
"""

from __future__ import annotations

from typing import Protocol

from accessproof.engine.evidence import Decoded


class Overloaded(Exception):
    """The engine cannot take more evidence right now; retry after a pause."""

    def __init__(self, retry_after: float, detail: str = "engine busy") -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.detail = detail


class EvidenceSink(Protocol):
    """Where receivers deliver decoded evidence."""

    async def accept(self, decoded: Decoded, transport: str) -> None:
        """Store the evidence durably, then return.

        ``transport`` is ``"http"`` or ``"grpc"`` and labels the span counters.
        Raises :class:`Overloaded` when the engine must push back.
        """
        ...
