"""Third-party clients of the collector: the OTel SDK's own OTLP/HTTP exporter, OTLP/JSON,
and the official OTel OpenAI instrumentation wrapping the real ``openai`` client."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from fake_openai import FakeOpenAI

pytestmark = pytest.mark.collector


def _trace(url: str, trace_id: str, spans: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(f"{url}/api/traces/{trace_id}")
        if r.status_code == 200 and len(r.json()["spans"]) >= spans:
            result: list[dict[str, Any]] = r.json()["spans"]
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"trace {trace_id} not stored: {r.status_code} {r.text[:300]}")
        time.sleep(0.1)


def _emit(tracer: Any) -> str:
    with tracer.start_as_current_span("request") as root:
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as s:
            s.set_attribute("gen_ai.operation.name", "chat")
            s.set_attribute("gen_ai.provider.name", "openai")
            s.set_attribute("gen_ai.request.model", "gpt-4o")
            s.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
            s.set_attribute("gen_ai.usage.input_tokens", 1000)
            s.set_attribute("gen_ai.usage.output_tokens", 100)
            s.set_attribute("gen_ai.response.finish_reasons", ["stop"])
        with tracer.start_as_current_span("openai.chat", kind=SpanKind.CLIENT) as s:
            s.set_attribute("gen_ai.system", "openai")
            s.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            s.set_attribute("gen_ai.usage.prompt_tokens", 2000)
            s.set_attribute("gen_ai.usage.completion_tokens", 10)
            s.set_attribute("gen_ai.completion.0.content", "I'm sorry, but I can't help with that.")
        return f"{root.get_span_context().trace_id:032x}"


def _check(spans: list[dict[str, Any]]) -> None:
    by_name = {s["name"]: s for s in spans}
    current = by_name["chat gpt-4o"]
    assert current["model"] == "gpt-4o-2024-08-06"
    assert current["input_tokens"] == 1000
    assert current["output_tokens"] == 100
    assert current["cost_usd"] == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)  # priced by the collector
    legacy = by_name["openai.chat"]
    assert legacy["model"] == "gpt-4o-mini"
    assert legacy["input_tokens"] == 2000
    assert legacy["refusal"]  # the collector's heuristic on the older completion attribute
    assert by_name["request"]["parent_span_id"] in ("", None)


def test_otel_sdk_otlp_http_exporter_protobuf(collector: str) -> None:
    tp = TracerProvider(resource=Resource.create({"service.name": "otel-app"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector}/v1/traces")))
    trace_id = _emit(tp.get_tracer("app"))
    tp.shutdown()
    _check(_trace(collector, trace_id, 3))


def test_otlp_json_from_otel_spans(collector: str) -> None:
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "otel-json-app"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    trace_id = _emit(tp.get_tracer("app"))
    doc = json_format.MessageToDict(encode_spans(memory.get_finished_spans()))

    def hexify(o: Any) -> Any:  # OTLP/JSON: ids are hex, not protobuf-JSON base64
        if isinstance(o, dict):
            return {
                k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else hexify(v))
                for k, v in o.items()
            }
        return [hexify(v) for v in o] if isinstance(o, list) else o

    r = httpx.post(
        f"{collector}/v1/traces", content=orjson.dumps(hexify(doc)), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    _check(_trace(collector, trace_id, 3))


def test_official_openai_instrumentation_with_the_real_client(collector: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    tp = TracerProvider(resource=Resource.create({"service.name": "openai-app"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector}/v1/traces")))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp)
    try:
        with FakeOpenAI(reply="sure, your order ships tomorrow") as fake:
            client = openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
            with tp.get_tracer("app").start_as_current_span("handler") as root:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                for _ in stream:
                    pass
                trace_id = f"{root.get_span_context().trace_id:032x}"
            client.close()
    finally:
        instrumentor.uninstrument()
        tp.shutdown()
    spans = _trace(collector, trace_id, 3)
    calls = [s for s in spans if s["name"] != "handler"]
    assert len(calls) == 2
    for call in calls:
        assert call["model"] == "gpt-4o-mini-2024-07-18"
        assert call["input_tokens"] > 0
        assert call["output_tokens"] > 0
        assert call["cost_usd"] > 0
        assert not call["refusal"]
