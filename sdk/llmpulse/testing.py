"""Test helpers: capture spans in memory and assert on them exactly.

::

    from llmpulse import testing

    def test_reply_is_casual():
        with testing.capture(assertions=[llmpulse.check.starts_lowercase()]) as spans:
            reply("hi")
        (s,) = spans.llm_spans()
        assert s.attributes["gen_ai.usage.output_tokens"] == 12
        assert testing.evaluations(s) == {"starts_lowercase": "pass"}

With ``deterministic=True`` (the default) trace ids count 1, 2, 3 ..., span ids too, and
the clock starts at 2023-11-14T22:13:20Z and moves 1 ms each time it is read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ._client import IdGenerator
from ._span import AttrValue, SpanRecord

__all__ = [
    "DeterministicIds",
    "FakeClock",
    "InMemoryExporter",
    "capture",
    "evaluations",
    "span_dict",
]


class InMemoryExporter:
    """An exporter that keeps what it is given; reading ``spans`` flushes the SDK first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[SpanRecord] = []
        self._feedback: list[dict[str, Any]] = []

    def export_spans(self, spans: Sequence[SpanRecord], deadline: float) -> bool:
        with self._lock:
            self._spans.extend(spans)
        return True

    def export_feedback(self, items: Sequence[dict[str, Any]], deadline: float) -> bool:
        with self._lock:
            self._feedback.extend(items)
        return True

    def shutdown(self) -> None:
        """Nothing to close; the captured spans stay readable."""

    def _flush(self) -> None:
        from . import flush

        flush(10.0)

    @property
    def spans(self) -> list[SpanRecord]:
        """Every exported span, in export order (flushes first)."""
        self._flush()
        with self._lock:
            return list(self._spans)

    @property
    def feedback(self) -> list[dict[str, Any]]:
        self._flush()
        with self._lock:
            return list(self._feedback)

    def llm_spans(self) -> list[SpanRecord]:
        """Spans that carry ``gen_ai.operation.name`` and token or model data (model calls)."""
        return [s for s in self.spans if s.kind == 3]

    def by_name(self, name: str) -> list[SpanRecord]:
        return [s for s in self.spans if s.name == name]

    def clear(self) -> None:
        self._flush()
        with self._lock:
            self._spans.clear()
            self._feedback.clear()


class DeterministicIds(IdGenerator):
    """Trace ids 1, 2, 3 ... and span ids 1, 2, 3 ... (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trace = 0
        self._span = 0

    def trace_id(self) -> int:
        with self._lock:
            self._trace += 1
            return self._trace

    def span_id(self) -> int:
        with self._lock:
            self._span += 1
            return self._span


class FakeClock:
    """A clock in nanoseconds that advances ``step_ns`` on every read."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1_000_000) -> None:
        self._lock = threading.Lock()
        self.now = start_ns
        self.step_ns = step_ns

    def __call__(self) -> int:
        with self._lock:
            self.now += self.step_ns
            return self.now


@contextmanager
def capture(service: str = "test", *, deterministic: bool = True, **init_options: Any) -> Iterator[InMemoryExporter]:
    """Initialise llmpulse with an in-memory exporter for the block, then shut it down."""
    from . import init, shutdown

    exporter = InMemoryExporter()
    if deterministic:
        init_options.setdefault("id_generator", DeterministicIds())
        init_options.setdefault("clock", FakeClock())
    init(service=service, exporter=exporter, **init_options)
    try:
        yield exporter
    finally:
        shutdown()


def evaluations(span: SpanRecord) -> dict[str, str]:
    """``{assertion name: "pass" | "fail" | "error"}`` from a span's evaluation events."""
    out: dict[str, str] = {}
    for event in span.events:
        if event.name == "gen_ai.evaluation.result":
            out[str(event.attributes["gen_ai.evaluation.name"])] = str(
                event.attributes["gen_ai.evaluation.score.label"]
            )
    return out


def span_dict(span: SpanRecord) -> dict[str, Any]:
    """A plain-dict view of a span for exact comparisons in tests."""
    events: list[dict[str, AttrValue | int | str | dict[str, AttrValue]]] = [
        {"name": e.name, "time_ns": e.time_ns, "attributes": dict(e.attributes)} for e in span.events
    ]
    return {
        "name": span.name,
        "trace_id": span.trace_id_hex,
        "span_id": span.span_id_hex,
        "parent_span_id": f"{span.parent_id:016x}" if span.parent_id else None,
        "kind": span.kind,
        "start_ns": span.start_ns,
        "end_ns": span.end_ns,
        "status": span.status,
        "status_message": span.status_message,
        "attributes": dict(span.attributes),
        "events": events,
    }
