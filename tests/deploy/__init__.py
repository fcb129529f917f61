"""Tests of the deployment files: compose, collector, Prometheus rules, Grafana."""

from __future__ import annotations
