"""Tests of what leaves the engine: metrics and incident log records."""

from __future__ import annotations
