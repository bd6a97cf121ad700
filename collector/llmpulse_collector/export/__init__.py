"""Metric export: the aggregates (``aggregate.py``) and the collector's health (``health.py``),
exposed to Prometheus (``prometheus.py``, ``GET /metrics``) and sent to Datadog over
DogStatsD (``datadog.py``). The names and labels are a public contract: the README's
metrics table lists them, and the dashboards and alert rules are checked against them.
"""
