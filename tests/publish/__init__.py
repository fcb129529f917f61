"""Tests of what leaves the engine: metrics and incident log records."""
