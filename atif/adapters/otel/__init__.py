"""OpenTelemetry traces of agents: GenAI semantic conventions and OpenInference, OTLP/JSON or span JSONL.

:mod:`~atif.adapters.otel.spans` reads the exports, :mod:`~atif.adapters.otel.conventions`
reads what a span says, :mod:`~atif.adapters.otel.adapter` turns a trace into a trajectory.
"""

from atif.adapters.otel.adapter import OtelAdapter

__all__ = ["OtelAdapter"]
