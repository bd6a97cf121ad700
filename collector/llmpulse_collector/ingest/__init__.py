"""Ingest: turn what clients send into rows (``rows.py``), and say clearly what was wrong.

One module per wire format (``otlp.py`` for OTLP/HTTP traces); all of them hand their spans
to ``normalize.py``, which maps every instrumentation's attribute names onto one row shape.

Errors, as OTLP/HTTP answers them:

- the whole request is unusable → :class:`PayloadError` with the HTTP status (400 undecodable
  or badly shaped, 413 too large, 415 unsupported content type or encoding) and a message
  saying what was wrong and what to send instead;
- some spans are invalid (bad ids, end before start, ...) → those spans are dropped and
  counted in :attr:`DecodeResult.rejected`, the rest kept: OTLP's *partial success*.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmpulse_collector.rows import AssertionRow, SpanRow

__all__ = ["DecodeResult", "Limits", "PayloadError"]


class PayloadError(Exception):
    """The request as a whole cannot be accepted.

    Attributes:
        status: the HTTP status to answer: 400 (undecodable or badly shaped payload),
            413 (too large), 415 (unsupported ``Content-Type`` or ``Content-Encoding``).
        message: what was wrong and what to send instead, for the response body.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"PayloadError({self.status}, {self.message!r})"


@dataclass(frozen=True)
class Limits:
    """Bounds on one request, so one client cannot exhaust the collector's memory or storage.

    Attributes:
        max_body_bytes: the body as received (compressed), checked before it is decompressed.
        max_decompressed_bytes: what a gzip/deflate body may inflate to (zip bombs): 413 past it.
        max_spans_per_request: 413 past it; OTel SDKs send 512 a batch by default.
        max_attribute_chars: longer string values (attributes, names, messages) are cut to
            this many characters and marked ``…[truncated N chars]``.
        max_content_chars: the ``input`` and ``output`` columns (prompt and completion
            messages) are cut to this, with the same marker.
        retention_days: spans that started longer ago than this are rejected (partial
            success, with the reason): the store's TTL would delete them at once, after the
            client was told they were kept. None: no such check.
    """

    max_body_bytes: int = 16 << 20
    max_decompressed_bytes: int = 64 << 20
    max_spans_per_request: int = 50_000
    max_attribute_chars: int = 65_536
    max_content_chars: int = 32_768
    retention_days: int | None = None


@dataclass
class DecodeResult:
    """The rows of one request, and what was dropped from it.

    Attributes:
        spans: one :data:`~llmpulse_collector.rows.SpanRow` per accepted span.
        assertions: one row per ``gen_ai.evaluation.result`` event of an accepted span.
        rejected: spans dropped as invalid (OTLP ``partial_success.rejected_spans``).
        errors: one readable message per distinct problem (rejections, and warnings such
            as a clamped sample weight), for ``partial_success.error_message``.
    """

    spans: list[SpanRow]
    assertions: list[AssertionRow]
    rejected: int
    errors: list[str]
