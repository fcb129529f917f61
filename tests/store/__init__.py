"""Tests of the store backends against the store contract."""

from __future__ import annotations
