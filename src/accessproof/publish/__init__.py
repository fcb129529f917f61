"""What leaves the engine: Prometheus metrics and incidents as OTLP log records."""

from __future__ import annotations

from accessproof.publish.logs import IncidentLogPublisher, build_log_exporter
from accessproof.publish.metrics import EngineMetrics, render

__all__ = ["EngineMetrics", "IncidentLogPublisher", "build_log_exporter", "render"]
