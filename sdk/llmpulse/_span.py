"""llmpulse's own span record: what the hot path fills in and the exporter encodes.

The OpenTelemetry SDK span costs ~18 µs to create and its Python OTLP encoder ~39 µs
more; a decorated model call has a budget of a few microseconds. So the call path fills a
``SpanRecord`` (a slotted object, no locks, no copies) and the background worker turns it
into OTLP. Ids follow W3C trace context: a 128-bit trace id and a 64-bit span id, held as
ints and encoded as 16 and 8 big-endian bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "KIND_CLIENT",
    "KIND_INTERNAL",
    "STATUS_ERROR",
    "STATUS_OK",
    "STATUS_UNSET",
    "AttrValue",
    "SharedAttributes",
    "SpanEvent",
    "SpanRecord",
]

# OTLP enum values (opentelemetry/proto/trace/v1/trace.proto).
KIND_INTERNAL = 1
KIND_CLIENT = 3
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

AttrValue = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]


class SharedAttributes(dict[str, AttrValue]):
    """Attributes one instance of which many events carry (an assertion's passing outcome
    is the same on every call). Read-only by contract: the protobuf encoder keeps their
    encoding in ``pb`` and ``event`` and reuses it."""

    pb: bytes | None = None
    # (event name, bytes before the event's time, bytes after it): a whole Span.events
    # field but for the time, kept by the protobuf encoder.
    event: tuple[str, bytes, bytes] | None = None


class SpanEvent:
    """A timestamped event on a span (for example one assertion outcome)."""

    __slots__ = ("attributes", "name", "time_ns")

    def __init__(self, name: str, time_ns: int, attributes: dict[str, AttrValue]) -> None:
        self.name = name
        self.time_ns = time_ns
        self.attributes = attributes

    def __repr__(self) -> str:
        return f"SpanEvent({self.name!r}, {self.attributes!r})"


class SpanRecord:
    """One finished (or in-flight) span.

    ``llm`` holds the raw material of an LLM call (see ``_llm.LLMCall``) until the
    background worker has turned it into attributes; it is ``None`` for other spans and
    after processing.
    """

    __slots__ = (
        "attributes",
        "end_ns",
        "events",
        "kind",
        "llm",
        "name",
        "parent_id",
        "span_id",
        "start_ns",
        "status",
        "status_message",
        "trace_id",
    )

    def __init__(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent_id: int,
        kind: int,
        start_ns: int,
        attributes: dict[str, AttrValue],
    ) -> None:
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.kind = kind
        self.start_ns = start_ns
        self.end_ns = 0
        self.attributes = attributes
        # No list until an event is added (the worker, for assertions): an in-flight call keeps
        # one GC-tracked object fewer alive (see _client.start_llm).
        self.events: list[SpanEvent] | tuple[()] = ()
        self.status = STATUS_UNSET
        self.status_message = ""
        self.llm: Any = None

    def add_event(self, event: SpanEvent) -> None:
        if type(self.events) is list:
            self.events.append(event)
        else:
            self.events = [event]

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_id_hex(self) -> str:
        return f"{self.span_id:016x}"

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def __repr__(self) -> str:
        return f"SpanRecord({self.name!r}, trace={self.trace_id_hex}, span={self.span_id_hex})"
