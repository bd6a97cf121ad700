"""llmpulse inside an app that already uses the OpenTelemetry SDK."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from responses import openai_completion

import llmpulse
import llmpulse.otel
from llmpulse import check, testing


@pytest.fixture
def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    app_exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(app_exporter))
    return tp, app_exporter


def test_llm_call_inside_an_app_otel_span_joins_its_trace(provider: tuple[TracerProvider, Any]) -> None:
    tp, _ = provider
    tracer = tp.get_tracer("app")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call() -> dict[str, Any]:
        return openai_completion()

    with testing.capture() as spans, tracer.start_as_current_span("http request") as app_span:
        call()
        ctx = app_span.get_span_context()
    (ours,) = spans.spans
    assert ours.trace_id == ctx.trace_id
    assert ours.parent_id == ctx.span_id


def test_app_otel_spans_inside_observe_nest_under_it(provider: tuple[TracerProvider, Any]) -> None:
    tp, app_exporter = provider
    tracer = tp.get_tracer("app")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call() -> dict[str, Any]:
        return openai_completion()

    @llmpulse.observe(name="workflow")
    def workflow() -> None:
        with tracer.start_as_current_span("db query"):
            call()

    with testing.capture(deterministic=False) as spans:
        workflow()
        ours = {s.name: s for s in spans.spans}
    (db,) = app_exporter.get_finished_spans()
    root = ours["workflow"]
    assert db.context.trace_id == root.trace_id
    assert db.parent is not None
    assert db.parent.span_id == root.span_id
    # the LLM call is innermost: under the app's span, which is under ours
    assert ours["chat gpt-4o-mini"].parent_id == db.context.span_id
    # the global provider was never touched
    assert not isinstance(trace.get_tracer_provider(), TracerProvider) or trace.get_tracer_provider() is not tp


def test_span_processor_enriches_genai_spans_from_other_instrumentations(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tp, app_exporter = provider
    tp.add_span_processor(llmpulse.otel.SpanProcessor())
    tracer = tp.get_tracer("some.instrumentation")
    with testing.capture(assertions=[check.starts_lowercase()]) as spans:
        with tracer.start_as_current_span("request"):
            # current semconv names
            with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as s:
                s.set_attribute("gen_ai.operation.name", "chat")
                s.set_attribute("gen_ai.provider.name", "openai")
                s.set_attribute("gen_ai.request.model", "gpt-4o")
                s.set_attribute("gen_ai.usage.input_tokens", 1000)
                s.set_attribute("gen_ai.usage.output_tokens", 100)
                s.set_attribute(
                    "gen_ai.output.messages",
                    orjson.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": "I can't help with that."}]}]
                    ).decode(),
                )
            # older names (gen_ai.system, prompt/completion tokens, indexed completion content)
            with tracer.start_as_current_span("openai.chat", kind=trace.SpanKind.CLIENT) as s:
                s.set_attribute("gen_ai.system", "openai")
                s.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                s.set_attribute("gen_ai.usage.prompt_tokens", 2000)
                s.set_attribute("gen_ai.usage.completion_tokens", 10)
                s.set_attribute("gen_ai.completion.0.content", "sure, done")
            # OpenInference
            with tracer.start_as_current_span("ChatCompletion") as s:
                s.set_attribute("openinference.span.kind", "LLM")
                s.set_attribute("llm.model_name", "gpt-4o-mini")
                s.set_attribute("llm.provider", "openai")
                s.set_attribute("llm.token_count.prompt", 10)
                s.set_attribute("llm.token_count.completion", 5)
                s.set_attribute("output.value", "Hello!")
        got = {s.name: s for s in spans.spans}
    assert set(got) == {"request", "chat gpt-4o", "openai.chat", "ChatCompletion"}
    current = got["chat gpt-4o"]
    assert current.attributes["llmpulse.refusal"] is True
    assert current.attributes["llmpulse.refusal.source"] == "heuristic"
    assert current.attributes["llmpulse.cost.usd"] == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    assert testing.evaluations(current) == {"starts_lowercase": "fail"}
    legacy = got["openai.chat"]
    assert legacy.attributes["llmpulse.refusal"] is False
    assert legacy.attributes["llmpulse.cost.usd"] == pytest.approx((2000 * 0.15 + 10 * 0.6) / 1e6)
    assert testing.evaluations(legacy) == {"starts_lowercase": "pass"}
    oi = got["ChatCompletion"]
    assert testing.evaluations(oi) == {"starts_lowercase": "fail"}
    assert "llmpulse.refusal" not in got["request"].attributes  # not a model call: copied as is
    assert got["chat gpt-4o"].parent_id == got["request"].span_id
    # the app's own exporter saw its spans unchanged
    app_spans = {s.name: s for s in app_exporter.get_finished_spans()}
    assert "llmpulse.refusal" not in (app_spans["chat gpt-4o"].attributes or {})


def test_span_processor_without_init_drops_and_counts(provider: tuple[TracerProvider, Any]) -> None:
    tp, _ = provider
    tp.add_span_processor(llmpulse.otel.SpanProcessor(genai_only=True))
    with tp.get_tracer("x").start_as_current_span("chat") as s:
        s.set_attribute("gen_ai.operation.name", "chat")
    assert llmpulse.sdk_stats()["spans_dropped.not_initialised"] == 1


def test_semconv_reader_survives_odd_values() -> None:
    from llmpulse._semconv import from_attributes

    ex = from_attributes(
        {
            "gen_ai.usage.input_tokens": "²",
            "gen_ai.usage.output_tokens": "9" * 5000,
            "gen_ai.output.messages": '[{"role": "assistant", "parts": 5}]',
        }
    )
    assert ex.input_tokens is None
    assert ex.output_tokens is None
    assert ex.output_text == ""
