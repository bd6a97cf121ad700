"""The collector's row shapes: one contract between ingest, the write-ahead log and storage.

Every span, whatever instrumentation produced it, is normalised into one ``SpanRow``;
each ``gen_ai.evaluation.result`` event into one ``AssertionRow``; each feedback post into
one ``FeedbackRow``. Rows are plain dicts keyed by column name so they serialise to the
WAL with orjson and insert into ClickHouse with an explicit column list
(``SPAN_COLUMNS`` etc., in table order). Absent numbers are ``None`` only where the
column is Nullable; otherwise 0 / "" (ClickHouse's defaults).

``project`` is always the authenticated key's project, stamped by the collector, never
taken from the payload.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ASSERTION_COLUMNS",
    "ASSERTION_SCHEMA",
    "FEEDBACK_COLUMNS",
    "FEEDBACK_SCHEMA",
    "SPAN_COLUMNS",
    "SPAN_SCHEMA",
    "AssertionRow",
    "FeedbackRow",
    "SpanRow",
]

SpanRow = dict[str, Any]
AssertionRow = dict[str, Any]
FeedbackRow = dict[str, Any]

# (column, ClickHouse type, python default) in table order.
SPAN_SCHEMA: tuple[tuple[str, str, Any], ...] = (
    ("project", "LowCardinality(String)", ""),
    ("start_time", "DateTime64(9, 'UTC')", 0),  # int ns since the epoch
    ("end_time", "DateTime64(9, 'UTC')", 0),  # int ns since the epoch
    ("duration_s", "Float64", 0.0),
    ("trace_id", "String", ""),  # 32 lowercase hex
    ("span_id", "String", ""),  # 16 lowercase hex
    ("parent_span_id", "String", ""),  # "" for a root span
    ("name", "String", ""),
    ("kind", "UInt8", 0),  # OTLP SpanKind value
    ("status_code", "UInt8", 0),  # 0 unset, 1 ok, 2 error
    ("status_message", "String", ""),
    ("service", "LowCardinality(String)", ""),
    ("environment", "LowCardinality(String)", ""),
    ("release", "LowCardinality(String)", ""),
    ("scope", "LowCardinality(String)", ""),  # instrumentation scope name
    ("is_llm", "UInt8", 0),  # 1 for a model call (any GenAI convention)
    ("operation", "LowCardinality(String)", ""),  # gen_ai.operation.name
    ("provider", "LowCardinality(String)", ""),  # gen_ai.provider.name (or older gen_ai.system)
    ("request_model", "LowCardinality(String)", ""),
    ("response_model", "LowCardinality(String)", ""),
    ("model", "LowCardinality(String)", ""),  # response model, else what the request model was last answered as
    ("prompt_name", "LowCardinality(String)", ""),
    ("prompt_version", "LowCardinality(String)", ""),
    ("response_id", "String", ""),
    ("input_tokens", "UInt64", 0),  # includes cached input tokens (semconv)
    ("output_tokens", "UInt64", 0),
    ("cache_read_tokens", "UInt64", 0),
    ("cache_write_tokens", "UInt64", 0),
    ("reasoning_tokens", "UInt64", 0),
    ("cost_usd", "Nullable(Float64)", None),  # None: unknown price
    ("ttft_s", "Nullable(Float64)", None),  # time to first chunk, streams only
    ("stream", "UInt8", 0),
    ("finish_reasons", "Array(LowCardinality(String))", ()),
    ("refusal", "UInt8", 0),
    ("refusal_source", "LowCardinality(String)", ""),  # provider | heuristic | ""
    ("refusal_category", "LowCardinality(String)", ""),
    ("error_type", "LowCardinality(String)", ""),
    ("sample_weight", "Float64", 1.0),  # llmpulse.sample_weight; counts are multiplied by it
    ("user_id", "String", ""),
    ("session_id", "String", ""),
    ("input", "String", ""),  # gen_ai.input.messages (JSON text), truncated with a marker
    ("output", "String", ""),  # gen_ai.output.messages (JSON text), truncated with a marker
    ("attributes", "String", "{}"),  # every other span attribute, as a JSON object
    ("ingested_at", "DateTime64(3, 'UTC')", 0),  # int ms since the epoch
)

ASSERTION_SCHEMA: tuple[tuple[str, str, Any], ...] = (
    ("project", "LowCardinality(String)", ""),
    ("time", "DateTime64(9, 'UTC')", 0),  # the event's time, int ns
    ("trace_id", "String", ""),
    ("span_id", "String", ""),
    ("service", "LowCardinality(String)", ""),
    ("environment", "LowCardinality(String)", ""),
    ("provider", "LowCardinality(String)", ""),
    ("model", "LowCardinality(String)", ""),
    ("prompt_name", "LowCardinality(String)", ""),
    ("prompt_version", "LowCardinality(String)", ""),
    ("name", "LowCardinality(String)", ""),  # gen_ai.evaluation.name
    ("label", "LowCardinality(String)", ""),  # pass | fail | error
    ("score", "Nullable(Float64)", None),
    ("explanation", "String", ""),
    ("sample_weight", "Float64", 1.0),
)

FEEDBACK_SCHEMA: tuple[tuple[str, str, Any], ...] = (
    ("project", "LowCardinality(String)", ""),
    ("time", "DateTime64(3, 'UTC')", 0),  # int ms
    ("trace_id", "String", ""),  # 32 hex, or "" when only a response id was given
    ("response_id", "String", ""),
    ("name", "LowCardinality(String)", ""),
    ("value", "Float64", 0.0),
    ("comment", "String", ""),
)

SPAN_COLUMNS = tuple(c for c, _, _ in SPAN_SCHEMA)
ASSERTION_COLUMNS = tuple(c for c, _, _ in ASSERTION_SCHEMA)
FEEDBACK_COLUMNS = tuple(c for c, _, _ in FEEDBACK_SCHEMA)
