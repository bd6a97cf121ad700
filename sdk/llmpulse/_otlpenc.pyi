"""Types of the compiled OTLP protobuf encoder (``_otlpenc.c``; contract in its comments)."""

from collections.abc import Sequence

from llmpulse._span import SpanRecord

def encode(spans: Sequence[SpanRecord], resource_field: bytes, scope_field: bytes, /) -> bytes | None: ...
