"""Load accessproof's pytest plugin here unless its entry point already did."""

from __future__ import annotations

import pytest

import accessproof.testing.pytest_plugin as plugin


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "accessproof-testing")
