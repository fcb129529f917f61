"""The example app fixture of the drill tests, shared with the end-to-end tests."""

from __future__ import annotations

from tests.drill.conftest import start_app

__all__ = ["start_app"]
