"""The HTTP API, ``/metrics``, health probes and operator pages of the engine."""

from __future__ import annotations

from accessproof.web.app import WebContext, build_web_app

__all__ = ["WebContext", "build_web_app"]
