"""Fixtures shared by every test module."""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import settings

# In CI, property tests draw the same examples on every run, so a red build is
# reproducible; locally they explore new ones each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def require(available: bool, what: str) -> None:
    """Skip a test whose component is missing, except under CI, where it fails.

    CI installs every component in ``.ci/run``; a missing one there is a broken
    build, not a reason to pass quietly.
    """
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but missing", pytrace=False)
    pytest.skip(f"{what} is not installed here")


def require_binary(name: str) -> str:
    """Return the path of an executable, or skip (fail under CI) without it."""
    path = shutil.which(name)
    require(path is not None, f"the {name!r} executable")
    assert path is not None
    return path
