"""Prometheus metrics: what the process exposes at ``/metrics`` and how it is kept."""
