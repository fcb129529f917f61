"""Tests of the instrumentation library."""

from __future__ import annotations
