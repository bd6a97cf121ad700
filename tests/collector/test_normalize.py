"""Span → row normalisation, every column, for spans made by real clients: the llmpulse SDK
(through ``llmpulse.testing``, encoded by its own protobuf and JSON encoders) and the OTel SDK
(``TracerProvider`` + ``InMemorySpanExporter``, encoded like the official OTLP exporter), in
each attribute convention the collector reads."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

import llmpulse
from llmpulse import check, testing
from llmpulse._client import get_client
from llmpulse._cost import PriceBook
from llmpulse._otlp import ProtobufEncoder
from llmpulse._otlp_json import JsonEncoder
from llmpulse._refusal import RefusalDetector
from llmpulse._span import SpanRecord
from llmpulse_collector.ingest import DecodeResult, Limits
from llmpulse_collector.ingest.otlp import decode_traces
from llmpulse_collector.rows import ASSERTION_COLUMNS, SPAN_COLUMNS

NOW_NS = 1_800_000_000_123_456_789
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
PRICES = PriceBook()


def decode(body: bytes, content_type: str = PROTOBUF, limits: Limits | None = None) -> DecodeResult:
    result = decode_traces(
        body,
        content_type=content_type,
        content_encoding=None,
        project="proj",
        limits=limits or Limits(),
        prices=PRICES,
        refusals=RefusalDetector(),
        now_ns=NOW_NS,
    )
    for row in result.spans:
        assert tuple(row) == SPAN_COLUMNS  # every column, in table order
    for row in result.assertions:
        assert tuple(row) == ASSERTION_COLUMNS
    return result


def by_name(result: DecodeResult) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in result.spans}


# -- the llmpulse SDK ---------------------------------------------------------------------------


def _openai_reply(text: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 64}},
    }


def _broken(output: str) -> bool:
    raise RuntimeError("assertion bug")


@pytest.fixture
def sdk_spans() -> Iterator[tuple[list[SpanRecord], dict[str, Any]]]:
    """An ``@observe`` step wrapping an ``@llm`` call with a prompt and three assertions
    (pass, fail, error), and a tool step, recorded by the real SDK."""
    with testing.capture(
        "support-bot",
        environment="prod",
        release="1.4.2",
        assertions=[check.starts_lowercase(), check.max_length(10), check.custom(_broken, name="broken")],
    ) as exporter:
        prompt = llmpulse.Prompt("support-reply", "Be casual. {question}")

        @llmpulse.llm(provider="openai", model="gpt-4o-mini", prompt=prompt)
        def reply(messages: list[dict[str, str]]) -> dict[str, Any]:
            return _openai_reply("sure, it ships tomorrow")

        @llmpulse.observe(name="lookup_order", kind="tool")
        def lookup_order() -> str:
            return "shipped"

        @llmpulse.observe(name="handle")
        def handle() -> None:
            lookup_order()
            reply(messages=[{"role": "user", "content": "where is my order?"}])

        handle()
        client = get_client()
        assert client is not None
        yield exporter.spans, dict(client.resource)


@pytest.mark.parametrize("fmt", ["protobuf", "json"])
def test_llmpulse_sdk_spans(sdk_spans: tuple[list[SpanRecord], dict[str, Any]], fmt: str) -> None:
    records, resource = sdk_spans
    if fmt == "protobuf":
        result = decode(ProtobufEncoder(resource, "llmpulse", "0.1.0").encode(records), PROTOBUF)
    else:
        result = decode(JsonEncoder(resource, "llmpulse", "0.1.0").encode(records), JSON)
    assert result.rejected == 0
    assert result.errors == []
    rows = by_name(result)
    assert set(rows) == {"handle", "lookup_order", "chat gpt-4o-mini"}
    llm = next(r for r in records if r.name == "chat gpt-4o-mini")
    handle = next(r for r in records if r.name == "handle")
    tool = next(r for r in records if r.name == "lookup_order")
    common = {
        "project": "proj",
        "status_code": 0,
        "status_message": "",
        "service": "support-bot",
        "environment": "prod",
        "release": "1.4.2",
        "scope": "llmpulse",
        "error_type": "",
        "sample_weight": 1.0,
        "user_id": "",
        "session_id": "",
        "ingested_at": NOW_NS // 1_000_000,
        "trace_id": llm.trace_id_hex,
    }
    not_llm = {
        "is_llm": 0,
        "provider": "",
        "request_model": "",
        "response_model": "",
        "model": "",
        "prompt_name": "",
        "prompt_version": "",
        "response_id": "",
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": None,
        "ttft_s": None,
        "stream": 0,
        "finish_reasons": [],
        "refusal": 0,
        "refusal_source": "",
        "refusal_category": "",
        "input": "",
        "output": "",
    }
    assert rows["chat gpt-4o-mini"] == {
        **common,
        "start_time": llm.start_ns,
        "end_time": llm.end_ns,
        "duration_s": pytest.approx((llm.end_ns - llm.start_ns) / 1e9),
        "span_id": llm.span_id_hex,
        "parent_span_id": handle.span_id_hex,
        "name": "chat gpt-4o-mini",
        "kind": 3,
        "is_llm": 1,
        "operation": "chat",
        "provider": "openai",
        "request_model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "model": "gpt-4o-mini-2024-07-18",
        "prompt_name": "support-reply",
        "prompt_version": llm.attributes["llmpulse.prompt.version"],
        "response_id": "chatcmpl-abc123",
        "input_tokens": 120,
        "output_tokens": 30,
        "cache_read_tokens": 64,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": pytest.approx(llm.attributes["llmpulse.cost.usd"]),  # the SDK's figure, kept
        "ttft_s": None,
        "stream": 0,
        "finish_reasons": ["stop"],
        "refusal": 0,
        "refusal_source": "",
        "refusal_category": "",
        "input": '[{"role":"user","parts":[{"type":"text","content":"where is my order?"}]}]',
        "output": llm.attributes["gen_ai.output.messages"],
        "attributes": "{}",  # everything went into columns
    }
    assert rows["handle"] == {
        **common,
        **not_llm,
        "start_time": handle.start_ns,
        "end_time": handle.end_ns,
        "duration_s": pytest.approx((handle.end_ns - handle.start_ns) / 1e9),
        "span_id": handle.span_id_hex,
        "parent_span_id": "",
        "name": "handle",
        "kind": 1,
        "operation": "",
        "attributes": '{"llmpulse.span.kind":"workflow"}',
    }
    # A tool step carries gen_ai.operation.name but is not a model call.
    assert rows["lookup_order"] == {
        **common,
        **not_llm,
        "start_time": tool.start_ns,
        "end_time": tool.end_ns,
        "duration_s": pytest.approx((tool.end_ns - tool.start_ns) / 1e9),
        "span_id": tool.span_id_hex,
        "parent_span_id": handle.span_id_hex,
        "name": "lookup_order",
        "kind": 1,
        "operation": "execute_tool",
        "attributes": '{"llmpulse.span.kind":"tool","gen_ai.tool.name":"lookup_order"}',
    }
    key = {
        "project": "proj",
        "trace_id": llm.trace_id_hex,
        "span_id": llm.span_id_hex,
        "service": "support-bot",
        "environment": "prod",
        "provider": "openai",
        "model": "gpt-4o-mini-2024-07-18",
        "prompt_name": "support-reply",
        "prompt_version": llm.attributes["llmpulse.prompt.version"],
        "sample_weight": 1.0,
    }
    events = {str(e.attributes["gen_ai.evaluation.name"]): e for e in llm.events}
    assert result.assertions == [
        {
            **key,
            "time": events["starts_lowercase"].time_ns,
            "name": "starts_lowercase",
            "label": "pass",
            "score": 1.0,
            "explanation": events["starts_lowercase"].attributes.get("gen_ai.evaluation.explanation", ""),
        },
        {
            **key,
            "time": events["max_length"].time_ns,
            "name": "max_length",
            "label": "fail",
            "score": 0.0,
            "explanation": events["max_length"].attributes["gen_ai.evaluation.explanation"],
        },
        {
            **key,
            "time": events["broken"].time_ns,
            "name": "broken",
            "label": "error",
            "score": None,
            "explanation": "RuntimeError: assertion bug",
        },
    ]


def test_sdk_refusal_and_sample_weight_are_taken_from_the_span() -> None:
    with testing.capture("bot", sample_rate=0.25) as exporter:

        @llmpulse.llm(provider="openai", model="gpt-4o-mini")
        def reply(text: str) -> dict[str, Any]:
            return _openai_reply(text)

        reply("I'm sorry, but I can't help with that.")  # a refusal: always kept, weight 1
        for _ in range(40):
            reply("sure thing")
        records = exporter.spans
    result = decode(ProtobufEncoder({"service.name": "bot"}, "llmpulse", "0.1.0").encode(records))
    refusal = [r for r in result.spans if r["refusal"]]
    assert len(refusal) == 1
    assert refusal[0]["refusal_source"] == "heuristic"
    assert refusal[0]["sample_weight"] == 1.0
    kept = [r for r in result.spans if not r["refusal"]]
    assert kept  # 40 calls at p = 0.25: some are kept
    assert all(r["sample_weight"] == 4.0 for r in kept)
    assert result.errors == []


# -- the OTel SDK, in each convention ---------------------------------------------------------


def otel_tracer(resource: dict[str, Any]) -> tuple[Tracer, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider.get_tracer("my.instrumentation", "2.0"), memory


def otel_protobuf(spans: tuple[ReadableSpan, ...]) -> bytes:
    """What the official OTLP/HTTP protobuf exporter posts."""
    return encode_spans(spans).SerializeToString()  # type: ignore[no-any-return]


def otel_json(spans: tuple[ReadableSpan, ...]) -> bytes:
    """OTLP/JSON: protobuf's JSON mapping with hex ids (enums stay names: accepted too)."""

    def hexify(o: Any) -> Any:
        if isinstance(o, dict):
            return {
                k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else hexify(v))
                for k, v in o.items()
            }
        return [hexify(v) for v in o] if isinstance(o, list) else o

    return orjson.dumps(hexify(json_format.MessageToDict(encode_spans(spans))))


def both(spans: tuple[ReadableSpan, ...]) -> Iterator[DecodeResult]:
    """The same spans decoded from the official protobuf and from OTLP/JSON: equal rows."""
    pb = decode(otel_protobuf(spans), PROTOBUF)
    js = decode(otel_json(spans), JSON)
    assert pb == js
    yield pb


def _ids(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    assert span.start_time is not None
    assert span.end_time is not None
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else "",
        "start_time": span.start_time,
        "end_time": span.end_time,
        "duration_s": pytest.approx((span.end_time - span.start_time) / 1e9),
    }


BLANK = {
    "project": "proj",
    "status_code": 0,
    "status_message": "",
    "scope": "my.instrumentation",
    "is_llm": 0,
    "operation": "",
    "provider": "",
    "request_model": "",
    "response_model": "",
    "model": "",
    "prompt_name": "",
    "prompt_version": "",
    "response_id": "",
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
    "reasoning_tokens": 0,
    "cost_usd": None,
    "ttft_s": None,
    "stream": 0,
    "finish_reasons": [],
    "refusal": 0,
    "refusal_source": "",
    "refusal_category": "",
    "error_type": "",
    "sample_weight": 1.0,
    "user_id": "",
    "session_id": "",
    "input": "",
    "output": "",
    "attributes": "{}",
    "ingested_at": NOW_NS // 1_000_000,
}


def test_current_genai_semconv_span() -> None:
    tracer, memory = otel_tracer(
        {"service.name": "shop", "deployment.environment.name": "staging", "service.version": "7.1"}
    )
    messages_in = '[{"role":"user","parts":[{"type":"text","content":"hello"}]}]'
    messages_out = '[{"role":"assistant","parts":[{"type":"text","content":"hi! how can I help?"}]}]'
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as s:
        s.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.request.temperature": 0.5,
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.response.id": "chatcmpl-9",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 100,
                "gen_ai.usage.cache_read.input_tokens": 200,
                "gen_ai.usage.reasoning.output_tokens": 10,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": messages_in,
                "gen_ai.output.messages": messages_out,
                "gen_ai.conversation.id": "conv-1",
                "user.id": "u-42",
                "server.address": "api.openai.com",
                "server.port": 443,
            }
        )
        s.add_event(
            "gen_ai.evaluation.result",
            {"gen_ai.evaluation.name": "helpful", "gen_ai.evaluation.score.value": 0.9},
        )
    (span,) = memory.get_finished_spans()
    for result in both(memory.get_finished_spans()):
        (row,) = result.spans
        cost = PriceBook().cost("openai", "gpt-4o-2024-08-06", 1000, 100, 200, None)
        assert cost is not None
        assert cost > 0
        assert row == {
            **BLANK,
            **_ids(span),
            "name": "chat gpt-4o",
            "kind": 3,
            "service": "shop",
            "environment": "staging",
            "release": "7.1",
            "is_llm": 1,
            "operation": "chat",
            "provider": "openai",
            "request_model": "gpt-4o",
            "response_model": "gpt-4o-2024-08-06",
            "model": "gpt-4o-2024-08-06",
            "response_id": "chatcmpl-9",
            "input_tokens": 1000,
            "output_tokens": 100,
            "cache_read_tokens": 200,
            "reasoning_tokens": 10,
            "cost_usd": pytest.approx(cost),  # priced by the collector
            "finish_reasons": ["stop"],
            "user_id": "u-42",
            "session_id": "conv-1",
            "input": messages_in,
            "output": messages_out,
            "attributes": '{"gen_ai.request.temperature":0.5,"server.address":"api.openai.com","server.port":443}',
        }
        # No label: a score in [0, 1] decides (>= 0.5 passes).
        (assertion,) = result.assertions
        assert assertion["name"] == "helpful"
        assert assertion["label"] == "pass"
        assert assertion["score"] == pytest.approx(0.9)
        assert assertion["model"] == "gpt-4o-2024-08-06"
        assert assertion["service"] == "shop"
        assert assertion["time"] == span.events[0].timestamp


def test_older_semconv_span_with_a_provider_refusal() -> None:
    tracer, memory = otel_tracer({"service.name": "legacy", "deployment.environment": "prod"})
    with tracer.start_as_current_span("openai.chat", kind=SpanKind.CLIENT) as s:
        s.set_attributes(
            {
                "gen_ai.system": "OpenAI",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.prompt_tokens": 2000,
                "gen_ai.usage.completion_tokens": 10,
                "gen_ai.response.finish_reasons": ["content_filter"],
            }
        )
    (span,) = memory.get_finished_spans()
    for result in both(memory.get_finished_spans()):
        (row,) = result.spans
        assert row == {
            **BLANK,
            **_ids(span),
            "name": "openai.chat",
            "kind": 3,
            "service": "legacy",
            "environment": "prod",  # older deployment.environment
            "release": "",
            "is_llm": 1,
            "provider": "openai",
            "request_model": "gpt-4o-mini",
            "model": "gpt-4o-mini",
            "input_tokens": 2000,
            "output_tokens": 10,
            "cost_usd": pytest.approx(PriceBook().cost("openai", "gpt-4o-mini", 2000, 10)),
            "finish_reasons": ["content_filter"],
            "refusal": 1,
            "refusal_source": "provider",
            "refusal_category": "content_filter",
        }


def test_openllmetry_span() -> None:
    tracer, memory = otel_tracer({"service.name": "traceloop-app"})
    with tracer.start_as_current_span("anthropic.chat", kind=SpanKind.CLIENT) as s:
        s.set_attributes(
            {
                "gen_ai.system": "Anthropic",
                "llm.request.type": "chat",
                "gen_ai.request.model": "claude-3-5-haiku-20241022",
                "gen_ai.response.model": "claude-3-5-haiku-20241022",
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "You are terse.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "How do I pick a lock?",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "I'm sorry, but I can't help with that.",
                "gen_ai.completion.0.finish_reason": "end_turn",
                "gen_ai.usage.prompt_tokens": 30,
                "gen_ai.usage.completion_tokens": 12,
                "llm.usage.total_tokens": 42,
                "llm.is_streaming": True,
                "traceloop.workflow.name": "support",
            }
        )
    (span,) = memory.get_finished_spans()
    for result in both(memory.get_finished_spans()):
        (row,) = result.spans
        assert row == {
            **BLANK,
            **_ids(span),
            "name": "anthropic.chat",
            "kind": 3,
            "service": "traceloop-app",
            "environment": "",
            "release": "",
            "is_llm": 1,
            "operation": "chat",
            "provider": "anthropic",
            "request_model": "claude-3-5-haiku-20241022",
            "response_model": "claude-3-5-haiku-20241022",
            "model": "claude-3-5-haiku-20241022",
            "input_tokens": 30,
            "output_tokens": 12,
            "cost_usd": pytest.approx(PriceBook().cost("anthropic", "claude-3-5-haiku-20241022", 30, 12)),
            "stream": 1,
            "finish_reasons": ["end_turn"],
            "refusal": 1,
            "refusal_source": "heuristic",  # the SDK's phrase heuristic, run by the collector
            "input": orjson.dumps(
                [
                    {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
                    {"role": "user", "parts": [{"type": "text", "content": "How do I pick a lock?"}]},
                ]
            ).decode(),
            "output": orjson.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "I'm sorry, but I can't help with that."}],
                    }
                ]
            ).decode(),
            "attributes": '{"llm.usage.total_tokens":42,"traceloop.workflow.name":"support"}',
        }


def test_openinference_span() -> None:
    tracer, memory = otel_tracer({"service.name": "rag"})
    with tracer.start_as_current_span("ChatCompletion") as s:
        s.set_attributes(
            {
                "openinference.span.kind": "LLM",
                "llm.provider": "openai",
                "llm.system": "openai",
                "llm.model_name": "gpt-4o-mini-2024-07-18",
                "llm.token_count.prompt": 50,
                "llm.token_count.completion": 5,
                "llm.token_count.total": 55,
                "llm.token_count.prompt_details.cache_read": 0,
                "llm.invocation_parameters": '{"temperature": 0}',
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "What is RAG?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Retrieval-augmented generation.",
                "input.value": '{"messages": [{"role": "user", "content": "What is RAG?"}]}',
                "input.mime_type": "application/json",
                "output.value": "Retrieval-augmented generation.",
                "output.mime_type": "text/plain",
                "session.id": "sess-7",
                "user.id": "user-9",
                "llm.prompt_template.version": "v3",
            }
        )
    (span,) = memory.get_finished_spans()
    for result in both(memory.get_finished_spans()):
        (row,) = result.spans
        assert row == {
            **BLANK,
            **_ids(span),
            "name": "ChatCompletion",
            "kind": 1,
            "service": "rag",
            "environment": "",
            "release": "",
            "is_llm": 1,
            "operation": "chat",
            "provider": "openai",
            "request_model": "gpt-4o-mini-2024-07-18",
            "response_model": "gpt-4o-mini-2024-07-18",
            "model": "gpt-4o-mini-2024-07-18",
            "prompt_version": "v3",
            "input_tokens": 50,
            "output_tokens": 5,
            "cost_usd": pytest.approx(PriceBook().cost("openai", "gpt-4o-mini-2024-07-18", 50, 5, 0)),
            "user_id": "user-9",
            "session_id": "sess-7",
            "input": '[{"role":"user","parts":[{"type":"text","content":"What is RAG?"}]}]',
            "output": '[{"role":"assistant","parts":[{"type":"text","content":"Retrieval-augmented generation."}]}]',
            # input.value / output.value stay: the messages filled the columns.
            "attributes": orjson.dumps(
                {
                    "openinference.span.kind": "LLM",
                    "llm.token_count.total": 55,
                    "llm.invocation_parameters": '{"temperature": 0}',
                    "input.value": '{"messages": [{"role": "user", "content": "What is RAG?"}]}',
                    "input.mime_type": "application/json",
                    "output.value": "Retrieval-augmented generation.",
                    "output.mime_type": "text/plain",
                }
            ).decode(),
        }


def test_openinference_chain_span_keeps_its_raw_input_and_output() -> None:
    tracer, memory = otel_tracer({"service.name": "rag"})
    with tracer.start_as_current_span("retrieve") as s:
        s.set_attributes(
            {"openinference.span.kind": "RETRIEVER", "input.value": "what is rag", "output.value": "3 documents"}
        )
    for result in both(memory.get_finished_spans()):
        (row,) = result.spans
        assert (row["is_llm"], row["operation"], row["input"], row["output"]) == (
            0,
            "retrieval",
            "what is rag",
            "3 documents",
        )
        assert row["attributes"] == '{"openinference.span.kind":"RETRIEVER"}'


def test_plain_non_llm_span_with_an_exception() -> None:
    tracer, memory = otel_tracer({"service.name": "api", "service.version": "2024.1"})
    with tracer.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER) as s:
        s.set_attributes({"http.request.method": "GET", "http.response.status_code": 500, "url.path": "/orders/7"})
        s.set_attribute("app.flags", ["a", "b"])
        s.record_exception(KeyError("order 7"))
        s.add_event("cache.miss", {"key": "order:7"})  # not stored: no column for it
        s.set_status(Status(StatusCode.ERROR, "order lookup failed"))
    (span,) = memory.get_finished_spans()
    for result in both(memory.get_finished_spans()):
        (row,) = result.spans
        assert row == {
            **BLANK,
            **_ids(span),
            "name": "GET /orders/{id}",
            "kind": 2,
            "status_code": 2,
            "status_message": "order lookup failed",
            "service": "api",
            "environment": "",
            "release": "2024.1",
            "error_type": "KeyError",  # from the exception event
            "attributes": orjson.dumps(
                {
                    "http.request.method": "GET",
                    "http.response.status_code": 500,
                    "url.path": "/orders/7",
                    "app.flags": ["a", "b"],
                }
            ).decode(),
        }
        assert result.assertions == []


# -- edge cases, as OTLP/JSON written by hand ----------------------------------------------------

TRACE = "5b8efff798038103d269b633813fc60c"


def otlp_json(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> bytes:
    attrs = [{"key": k, "value": v} for k, v in (resource or {"service.name": {"stringValue": "svc"}}).items()]
    return orjson.dumps(
        {
            "resourceSpans": [
                {"resource": {"attributes": attrs}, "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}
            ]
        }
    )


def jspan(attrs: dict[str, Any], *, i: int = 1, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": TRACE,
        "spanId": f"{i:016x}",
        "name": f"span{i}",
        "kind": 3,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001500000000",
        "attributes": [{"key": k, "value": v} for k, v in attrs.items()],
    }
    if events is not None:
        span["events"] = events
    return span


LLM = {
    "gen_ai.operation.name": {"stringValue": "chat"},
    "gen_ai.provider.name": {"stringValue": "openai"},
    "gen_ai.request.model": {"stringValue": "gpt-4o-mini"},
}


@pytest.mark.parametrize(
    "value",
    [
        {"doubleValue": "NaN"},
        {"doubleValue": "Infinity"},
        {"intValue": "-5"},
        {"doubleValue": 1.5},
        {"stringValue": "²"},  # str.isdigit() but not int()
        {"stringValue": "9" * 5000},  # past int()'s digit limit
        {"intValue": str(2**62)},  # huge
        {"boolValue": True},
        {"arrayValue": {"values": [{"intValue": "3"}]}},
    ],
)
def test_bad_token_counts_count_as_absent(value: dict[str, Any]) -> None:
    body = otlp_json(jspan({**LLM, "gen_ai.usage.input_tokens": value, "gen_ai.usage.output_tokens": value}))
    (row,) = decode(body, JSON).spans
    assert row["input_tokens"] == row["output_tokens"] == 0
    assert row["is_llm"] == 1
    assert row["cost_usd"] is None  # nothing to price


def test_malformed_output_messages_do_not_lose_the_span() -> None:
    body = otlp_json(jspan({**LLM, "gen_ai.output.messages": {"stringValue": '[{"parts": 5}]'}}))
    result = decode(body, JSON)
    (row,) = result.spans
    assert row["output"] == '[{"parts": 5}]'
    assert result.rejected == 0


@pytest.mark.parametrize(
    ("weight", "expected", "warned"),
    [
        ({"doubleValue": 4.0}, 4.0, False),
        ({"intValue": "10"}, 10.0, False),
        ({"doubleValue": 0.5}, 1.0, True),
        ({"doubleValue": "NaN"}, 1.0, True),
        ({"doubleValue": "Infinity"}, 1.0, True),
        ({"stringValue": "4"}, 1.0, True),
    ],
)
def test_sample_weight(weight: dict[str, Any], expected: float, warned: bool) -> None:
    event = {
        "name": "gen_ai.evaluation.result",
        "attributes": [
            {"key": "gen_ai.evaluation.name", "value": {"stringValue": "x"}},
            {"key": "gen_ai.evaluation.score.label", "value": {"stringValue": "pass"}},
        ],
    }
    result = decode(otlp_json(jspan({**LLM, "llmpulse.sample_weight": weight}, events=[event])), JSON)
    (row,) = result.spans
    assert row["sample_weight"] == expected
    assert result.assertions[0]["sample_weight"] == expected
    assert bool(result.errors) is warned
    if warned:
        assert "llmpulse.sample_weight" in result.errors[0]


@pytest.mark.parametrize(
    ("cost", "priced"),
    [({"doubleValue": 0.25}, False), ({"doubleValue": -1.0}, True), ({"doubleValue": "NaN"}, True)],
)
def test_cost_from_the_span_or_priced(cost: dict[str, Any], priced: bool) -> None:
    attrs = {
        **LLM,
        "gen_ai.usage.input_tokens": {"intValue": "1000"},
        "gen_ai.usage.output_tokens": {"intValue": "10"},
        "llmpulse.cost.usd": cost,
    }
    (row,) = decode(otlp_json(jspan(attrs)), JSON).spans
    expected = PriceBook().cost("openai", "gpt-4o-mini", 1000, 10) if priced else 0.25
    assert row["cost_usd"] == pytest.approx(expected)


def test_unknown_model_has_no_cost() -> None:
    attrs = {
        **LLM,
        "gen_ai.request.model": {"stringValue": "my-private-finetune-xyz"},
        "gen_ai.usage.input_tokens": {"intValue": "1000"},
    }
    (row,) = decode(otlp_json(jspan(attrs)), JSON).spans
    assert row["cost_usd"] is None
    assert row["input_tokens"] == 1000


def _evaluation(name: str | None, label: str | None, score: float | str | None) -> dict[str, Any]:
    attrs = []
    if name is not None:
        attrs.append({"key": "gen_ai.evaluation.name", "value": {"stringValue": name}})
    if label is not None:
        attrs.append({"key": "gen_ai.evaluation.score.label", "value": {"stringValue": label}})
    if score is not None:
        attrs.append({"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": score}})
    return {"name": "gen_ai.evaluation.result", "timeUnixNano": "1700000001000000000", "attributes": attrs}


def test_evaluation_labels() -> None:
    events = [
        _evaluation("a", "pass", 1.0),
        _evaluation("b", "FAIL", None),
        _evaluation("c", "error", None),
        _evaluation("d", "passed", None),
        _evaluation("e", "relevant", 0.2),  # free-form label: the score decides
        _evaluation("f", None, 0.5),
        _evaluation("g", "relevant", 7.0),  # no usable label or score: skipped
        _evaluation(None, "pass", 1.0),  # no name: skipped
        _evaluation("h", None, "NaN"),  # skipped
        {"name": "something.else", "attributes": []},  # not an evaluation
    ]
    result = decode(otlp_json(jspan(LLM, events=events)), JSON)
    assert [(a["name"], a["label"], a["score"]) for a in result.assertions] == [
        ("a", "pass", 1.0),
        ("b", "fail", None),
        ("c", "error", None),
        ("d", "pass", None),
        ("e", "fail", 0.2),
        ("f", "pass", 0.5),
    ]
    assert all(a["time"] == 1700000001000000000 for a in result.assertions)
    (warning,) = result.errors
    assert "gen_ai.evaluation.result" in warning
    assert "(and 2 more like it)" in warning
    assert result.rejected == 0


def test_event_without_a_time_takes_the_span_end() -> None:
    event = _evaluation("a", "pass", None)
    del event["timeUnixNano"]
    result = decode(otlp_json(jspan(LLM, events=[event])), JSON)
    assert result.assertions[0]["time"] == 1700000001500000000


def test_long_values_are_truncated_with_a_marker() -> None:
    huge = "x" * 10_000_000
    messages = orjson.dumps([{"role": "user", "parts": [{"type": "text", "content": "y" * 5000}]}]).decode()
    attrs = {
        **LLM,
        "app.blob": {"stringValue": huge},
        "app.list": {"arrayValue": {"values": [{"stringValue": "z" * 5000}]}},
        "gen_ai.input.messages": {"stringValue": messages},
    }
    limits = Limits(max_attribute_chars=1000, max_content_chars=2000)
    (row,) = decode(otlp_json(jspan(attrs)), JSON, limits).spans
    blob = orjson.loads(row["attributes"])["app.blob"]
    assert blob == "x" * 1000 + f"…[truncated {10_000_000 - 1000} chars]"
    assert orjson.loads(row["attributes"])["app.list"] == ["z" * 1000 + "…[truncated 4000 chars]"]
    # The attribute limit applies first, then the content limit.
    assert row["input"] == messages[:1000] + f"…[truncated {len(messages) - 1000} chars]"
    limits = Limits(max_attribute_chars=65_536, max_content_chars=2000)
    (row,) = decode(otlp_json(jspan(attrs)), JSON, limits).spans
    assert row["input"] == messages[:2000] + f"…[truncated {len(messages) - 2000} chars]"
    assert len(orjson.loads(row["attributes"])["app.blob"]) == 65_536 + len(f"…[truncated {10_000_000 - 65_536} chars]")


def test_user_and_session_ids_first_present_wins() -> None:
    attrs = {
        "llmpulse.user_id": {"stringValue": "sdk-user"},
        "enduser.id": {"stringValue": "old-user"},
        "gen_ai.conversation.id": {"stringValue": "conv"},
        "llmpulse.session_id": {"intValue": "77"},
    }
    (row,) = decode(otlp_json(jspan(attrs)), JSON).spans
    assert (row["user_id"], row["session_id"]) == ("sdk-user", "77")
    assert row["attributes"] == "{}"


def test_time_to_first_chunk_and_streaming() -> None:
    attrs = {
        **LLM,
        "gen_ai.request.stream": {"boolValue": True},
        "gen_ai.response.time_to_first_chunk": {"doubleValue": 0.25},
    }
    (row,) = decode(otlp_json(jspan(attrs)), JSON).spans
    assert (row["stream"], row["ttft_s"]) == (1, 0.25)
    attrs["gen_ai.response.time_to_first_chunk"] = {"doubleValue": -1}
    (row,) = decode(otlp_json(jspan(attrs)), JSON).spans
    assert row["ttft_s"] is None


def test_value_types_in_attributes() -> None:
    attrs = {
        "s": {"stringValue": "x"},
        "i": {"intValue": 42},  # a number, not a string: accepted
        "big": {"intValue": str(-(2**63))},
        "d": {"doubleValue": "-Infinity"},
        "b": {"boolValue": False},
        "bytes": {"bytesValue": base64.b64encode(b"\x00\x01").decode()},
        "arr": {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "two"}, {}]}},
        "kv": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}},
        "empty": {},
    }
    (row,) = decode(otlp_json(jspan(attrs)), JSON).spans
    assert orjson.loads(row["attributes"]) == {
        "s": "x",
        "i": 42,
        "big": -(2**63),
        "d": None,  # JSON has no infinity
        "b": False,
        "bytes": "AAE=",
        "arr": [1, "two", None],
        "kv": {"k": True},
        "empty": None,
    }


def test_resource_without_service_name() -> None:
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [jspan({})]}]}]})
    (row,) = decode(body, JSON).spans
    assert (row["service"], row["environment"], row["release"], row["scope"]) == ("", "", "", "")


def test_rows_serialise_for_the_write_ahead_log() -> None:
    attrs = {**LLM, "d": {"doubleValue": "NaN"}, "gen_ai.usage.input_tokens": {"intValue": "5"}}
    result = decode(otlp_json(jspan(attrs)), JSON)
    restored = orjson.loads(orjson.dumps({"spans": result.spans, "assertions": result.assertions}))
    assert restored["spans"][0]["input_tokens"] == 5
    assert not math.isnan(restored["spans"][0]["duration_s"])


def test_genai_names_on_a_non_genai_span_stay_in_attributes() -> None:
    # An OpenInference CHAIN span rolling up its children's tokens: not a model call, so the
    # token count is not a column here, and it is not dropped either.
    attrs = {"openinference.span.kind": {"stringValue": "CHAIN"}, "llm.token_count.prompt": {"intValue": "12"}}
    (row,) = decode(otlp_json(jspan(attrs)), JSON).spans
    assert (row["is_llm"], row["input_tokens"]) == (0, 0)
    assert orjson.loads(row["attributes"]) == {"openinference.span.kind": "CHAIN", "llm.token_count.prompt": 12}


def test_a_refusal_verdict_on_the_span_wins_over_the_heuristic() -> None:
    # The SDK decided (no refusal) and the reply's text is not read; without a verdict the
    # collector's own heuristic reads it and finds one.
    tracer, memory = otel_tracer({"service.name": "bot"})
    reply = (
        '[{"role": "assistant", "parts": [{"type": "text", "content": "I\'m sorry, but I can\'t help with that."}]}]'
    )
    for name, verdict in (("decided", {"llmpulse.refusal": False}), ("undecided", {})):
        with tracer.start_as_current_span(name, kind=SpanKind.CLIENT) as s:
            s.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.output.messages": reply,
                    **verdict,
                }
            )
    for result in both(memory.get_finished_spans()):
        rows = by_name(result)
        assert (rows["decided"]["refusal"], rows["decided"]["refusal_source"]) == (0, "")
        assert (rows["undecided"]["refusal"], rows["undecided"]["refusal_source"]) == (1, "heuristic")
        assert rows["decided"]["output"] == rows["undecided"]["output"] != ""


# -- one name per model, failures included -------------------------------------------------------


def _call(tracer: Tracer, request: str, response: str | None, provider: str = "openai") -> None:
    with tracer.start_as_current_span(f"chat {request}", kind=SpanKind.CLIENT) as s:
        s.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider})
        s.set_attribute("gen_ai.request.model", request)
        if response is None:
            s.set_status(Status(StatusCode.ERROR, "rate limited"))
            s.set_attribute("error.type", "RateLimitError")
        else:
            s.set_attribute("gen_ai.response.model", response)


def test_failed_calls_take_the_model_name_their_request_model_was_last_answered_as() -> None:
    from llmpulse_collector.normalize import ModelNames

    models = ModelNames()
    tracer, memory = otel_tracer({"service.name": "shop"})

    def models_of(project: str = "proj") -> list[tuple[str, str, str, int]]:
        body = otel_protobuf(memory.get_finished_spans())
        memory.clear()
        rows = decode_traces(
            body, content_type=PROTOBUF, content_encoding=None, project=project, limits=Limits(),
            prices=PRICES, refusals=RefusalDetector(), now_ns=NOW_NS, models=models,
        ).spans  # fmt: skip
        return [(r["request_model"], r["response_model"], r["model"], r["status_code"]) for r in rows]

    # before any answer: the request name (nothing better is known)
    _call(tracer, "gpt-4o-mini", None)
    assert models_of() == [("gpt-4o-mini", "", "gpt-4o-mini", 2)]
    # an answer, then failures in later requests: one name, so an error ratio by model is right
    _call(tracer, "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    _call(tracer, "gpt-4o-mini", None)
    assert models_of() == [
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18", 0),
        ("gpt-4o-mini", "", "gpt-4o-mini-2024-07-18", 2),  # the span's own columns are kept
    ]
    # the alias moving to a new snapshot moves the failures with it
    _call(tracer, "gpt-4o-mini", "gpt-4o-mini-2025-01-01")
    _call(tracer, "gpt-4o-mini", None)
    assert [m for _, _, m, _ in models_of()] == ["gpt-4o-mini-2025-01-01", "gpt-4o-mini-2025-01-01"]
    # per project and per provider: another tenant's or provider's answers are not borrowed
    _call(tracer, "gpt-4o-mini", None)
    assert models_of("other") == [("gpt-4o-mini", "", "gpt-4o-mini", 2)]
    _call(tracer, "gpt-4o-mini", None, provider="azure.ai.openai")
    assert models_of() == [("gpt-4o-mini", "", "gpt-4o-mini", 2)]


def test_model_names_remember_a_bounded_number_of_request_models() -> None:
    from llmpulse_collector.normalize import ModelNames

    models = ModelNames(capacity=2)
    models.learn(("p", "openai", "a"), "a-1")
    models.learn(("p", "openai", "b"), "b-1")
    models.learn(("p", "openai", "c"), "c-1")  # full: not learned
    models.learn(("p", "openai", "a"), "a-2")  # a known one still follows its answers
    assert len(models) == 2
    assert models.answer(("p", "openai", "a")) == "a-2"
    assert models.answer(("p", "openai", "c")) is None
    with pytest.raises(ValueError, match="capacity"):
        ModelNames(capacity=0)


def test_model_names_seeded_from_the_store_never_override_what_was_learned_since() -> None:
    from llmpulse_collector.normalize import ModelNames

    models = ModelNames(capacity=3)
    models.learn(("p", "openai", "a"), "a-live")
    models.seed([(("p", "openai", "a"), "a-stored"), (("p", "openai", "b"), "b-1"), (("p", "x", "c"), "c-1")])
    models.seed([(("p", "openai", "d"), "d-1")])  # full
    assert [models.answer(("p", "openai", m)) for m in "abd"] == ["a-live", "b-1", None]
    assert models.answer(("p", "x", "c")) == "c-1"
