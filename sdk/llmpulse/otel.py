"""Bridge for apps already on the OpenTelemetry SDK.

Add llmpulse's span processor to *your* TracerProvider; llmpulse never replaces the
global one::

    import llmpulse, llmpulse.otel
    from opentelemetry.sdk.trace import TracerProvider

    llmpulse.init(service="support-bot")
    provider = TracerProvider()
    provider.add_span_processor(llmpulse.otel.SpanProcessor())

Every span that ends on that provider is copied into llmpulse's exporter (so traces keep
their shape); GenAI spans from any instrumentation (OTel's official ones, OpenLLMetry,
OpenInference) additionally get llmpulse's refusal detection, cost and the global
assertions from ``init(assertions=...)`` before they reach the collector. Your own
exporters see your spans unchanged. The work happens on llmpulse's exporter thread; the
``on_end`` call only copies the span.

Requires ``opentelemetry-sdk`` (which an app on the OTel SDK has).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace import SpanProcessor as _OTelSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from . import _semconv
from ._client import get_client
from ._llm import BRIDGED, clean_attributes
from ._span import STATUS_ERROR, STATUS_OK, STATUS_UNSET, SpanEvent, SpanRecord
from ._stats import stats

__all__ = ["SpanProcessor"]

log = logging.getLogger("llmpulse")

_KINDS = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_STATUS = {StatusCode.UNSET: STATUS_UNSET, StatusCode.OK: STATUS_OK, StatusCode.ERROR: STATUS_ERROR}


def to_record(span: ReadableSpan) -> SpanRecord | None:
    """Copy an OTel SDK span into llmpulse's record (None if it has no valid context)."""
    ctx = span.get_span_context()
    if ctx is None or not ctx.is_valid:
        return None
    parent = span.parent
    record = SpanRecord(
        span.name,
        ctx.trace_id,
        ctx.span_id,
        parent.span_id if parent is not None else 0,
        _KINDS.get(span.kind, 1),
        span.start_time or 0,
        clean_attributes(dict(span.attributes or {})),
    )
    record.end_ns = span.end_time or record.start_ns
    record.status = _STATUS.get(span.status.status_code, STATUS_UNSET)
    record.status_message = span.status.description or ""
    if span.events:
        record.events = [
            SpanEvent(event.name, event.timestamp, clean_attributes(dict(event.attributes or {})))
            for event in span.events
        ]
    return record


class SpanProcessor(_OTelSpanProcessor):
    """An OTel ``SpanProcessor`` that sends spans, enriched, to the llmpulse collector.

    ``genai_only=True`` forwards only model-call spans instead of whole traces. Spans are
    dropped (and counted as ``spans_dropped.not_initialised``) while ``llmpulse.init``
    has not been called.
    """

    def __init__(self, *, genai_only: bool = False) -> None:
        self._genai_only = genai_only

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        client = get_client()
        if client is None:
            stats.incr("spans_dropped.not_initialised")
            return
        try:
            attrs: Any = span.attributes or {}
            genai = _semconv.is_genai(attrs)
            if self._genai_only and not genai:
                return
            record = to_record(span)
            if record is None:
                return
            if genai:
                record.llm = BRIDGED
            client.processor.enqueue(record)
        except Exception:
            log.debug("llmpulse could not copy an OTel span", exc_info=True)
            stats.incr("internal_errors")

    def shutdown(self) -> None:
        """The llmpulse client owns the exporter; ``llmpulse.shutdown()`` stops it."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        client = get_client()
        return True if client is None else client.flush(timeout_millis / 1000)
