"""llmpulse collector: OTLP ingest, durable log, ClickHouse storage and metrics export.

Install with ``pip install 'llmpulse[collector]'``. The service itself arrives with the
collector milestone; today this package holds the development receiver behind
``llmpulse demo --receiver``.
"""

from __future__ import annotations

__all__: list[str] = []
