"""End-to-end tests: the example app, real exporters, a real engine."""

from __future__ import annotations
