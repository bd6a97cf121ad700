"""The exporter's fast paths give exactly what the general code gives.

Issue #8 made the worker cheaper per span by skipping general machinery in common cases:
input and output messages written straight to JSON, response fields read through one
field view per object, check contexts built without the frozen dataclass's ``__init__``,
and evaluation-event attributes reused (and their protobuf encoding kept) while a check
returns the same result object. Each is compared here with the general path it bypasses.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmpulse import check, testing
from llmpulse._checks import Check, CheckContext, CheckResult, make_context
from llmpulse._cost import PriceBook
from llmpulse._extract import Extracted, _fields, _get, extract_response
from llmpulse._llm import Finisher, LLMCall, LLMSpec
from llmpulse._messages import input_messages, output_messages, simple_chat
from llmpulse._otlp import ProtobufEncoder
from llmpulse._redact import default_redact
from llmpulse._refusal import RefusalDetector
from llmpulse._span import SharedAttributes, SpanRecord


def finisher(max_content_chars: int = 20_000, redact: Any = default_redact) -> Finisher:
    return Finisher(
        capture_content=True,
        redact=redact,
        max_content_chars=max_content_chars,
        sample_rate=1.0,
        checks=(),
        refusals=RefusalDetector(),
        prices=PriceBook(),
    )


def general_input(fin: Finisher, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """What ``gen_ai.input.messages`` was before the fast path: convert, clean, dump."""
    messages = input_messages(args, kwargs)
    if not messages:
        return None
    fin._clean_messages(messages)
    return orjson.dumps(messages, default=str).decode()


def captured_input(fin: Finisher, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    attrs: dict[str, Any] = {}
    call = LLMCall(LLMSpec("openai", "m", "chat", None, ()), args, kwargs, False)
    fin._capture_input(attrs, call)
    return attrs.get("gen_ai.input.messages")


LONG = "You are the support assistant. Write to help@example.com or call +1 202 555 0143. " * 12
CASES: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (
        (),
        {
            "messages": [
                {"role": "system", "content": LONG},
                {"role": "user", "content": "hi, my card is 4111 1111 1111 1111"},
            ]
        },
    ),
    (
        ([{"role": "developer", "content": "be brief"}, {"role": "user", "content": 'quote " and \\ and \n and é ✓'}],),
        {},
    ),
    ((object(), [{"role": "user", "content": "after self"}]), {}),
    (([{"role": "user", "content": ""}, {"role": "assistant", "content": "sure", "name": "bot"}],), {"temperature": 0}),
    (([],), {}),  # nothing to record
    ((), {"messages": [{"role": "user", "content": LONG + LONG}]}),  # truncated below
    # tuples, read as lists (as the general path does)
    ((), {"messages": ({"role": "user", "content": "a tuple"},)}),
    ((({"role": "system", "content": "s"}, {"role": "user", "content": "u"}),), {}),
]
GENERAL_ONLY: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {"messages": [{"role": "user", "content": "hi"}], "system": "be nice"}),  # Anthropic system=
    ((), {"messages": [{"role": "tool", "tool_call_id": "c1", "content": "42"}]}),
    ((), {"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}]}),
    ((), {"messages": [{"role": "assistant", "content": "", "tool_calls": []}]}),
    ((), {"input": "responses api"}),
    (("just a prompt",), {}),
    ((), {"messages": ({"role": "user", "content": "a tuple"}, "not a dict")}),
]


@pytest.mark.parametrize(("args", "kwargs"), CASES)
def test_simple_chat_input_is_written_as_the_general_path_would(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    assert simple_chat(args, kwargs) is not None  # the fast path is the one under test
    fin = finisher(max_content_chars=1500)
    assert captured_input(fin, args, kwargs) == general_input(finisher(max_content_chars=1500), args, kwargs)
    # Cached texts give the same answer the second time.
    assert captured_input(fin, args, kwargs) == general_input(finisher(max_content_chars=1500), args, kwargs)


@pytest.mark.parametrize(("args", "kwargs"), GENERAL_ONLY)
def test_other_input_shapes_take_the_general_path(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    assert simple_chat(args, kwargs) is None
    fin = finisher()
    assert captured_input(fin, args, kwargs) == general_input(finisher(), args, kwargs)


roles = st.sampled_from(["system", "user", "assistant", "developer", "critic"])
texts = st.text(max_size=400) | st.sampled_from([LONG, "", "x" * 300])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries({"role": roles, "content": texts}), max_size=5), st.booleans(), st.booleans())
def test_fast_input_matches_general_for_any_chat(
    messages: list[dict[str, str]], as_kwarg: bool, as_tuple: bool
) -> None:
    given: Any = tuple(messages) if as_tuple else messages
    args, kwargs = ((), {"messages": given}) if as_kwarg else ((given,), {})
    fin = finisher(max_content_chars=350)
    assert captured_input(fin, args, kwargs) == general_input(finisher(max_content_chars=350), args, kwargs)


def general_output(fin: Finisher, ex: Extracted) -> str | None:
    out = output_messages(ex)
    if not out:
        return None
    fin._clean_messages(out)
    return orjson.dumps(out).decode()


@pytest.mark.parametrize(
    "ex",
    [
        Extracted(output_text="hey, it ships tomorrow", finish_reasons=["stop"]),
        Extracted(output_text=LONG, finish_reasons=["length", "stop"]),
        Extracted(output_text="no reason given"),
        Extracted(refusal=True, refusal_text="I can't help with that", finish_reasons=["stop"]),
        Extracted(output_text="calling", tool_calls=[{"id": "c1", "name": "f", "arguments": {"a": 1}}]),
        Extracted(finish_reasons=["stop"]),
        Extracted(),
    ],
)
def test_output_json_matches_general_path(ex: Extracted) -> None:
    assert finisher(max_content_chars=900)._output_json(ex) == general_output(finisher(max_content_chars=900), ex)


def test_output_json_follows_every_finish_reason() -> None:
    """The JSON tail after the reply is kept per finish reason: each reason, also odd ones,
    ones needing escapes and more distinct ones than are kept, gives the general path's bytes."""
    fin = finisher()
    reasons = ["stop", "length", 'quo"te', "tab\there", "émoji 🙂", *(f"r{i}" for i in range(100))]
    for reason in reasons + reasons[::-1]:
        ex = Extracted(output_text="hey there", finish_reasons=[reason])
        assert fin._output_json(ex) == general_output(fin, ex)
        assert orjson.loads(fin._output_json(ex) or "")[0]["finish_reason"] == orjson.loads(orjson.dumps(reason))


def test_a_failing_redactor_still_hides_content_on_the_fast_path() -> None:
    def broken(text: str) -> str:
        raise RuntimeError("boom")

    fin = finisher(redact=broken)
    got = captured_input(fin, (), {"messages": [{"role": "user", "content": "secret " * 50}]})
    assert got is not None
    assert "secret" not in got
    assert "[REDACTION_FAILED]" in got


class Hostile:
    """Attributes that raise, as a property or a __getattr__ may."""

    model = "m1"

    @property
    def id(self) -> str:
        raise RuntimeError("no id")


def completion(**fields: Any) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o", "choices": [], **fields}
    )


def test_field_views_answer_what_get_answers() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    reply = completion(usage=usage, service_tier=None, vendor_extra={"x": 1})  # an extra field, kept
    assert reply.__pydantic_extra__  # the merge of extras is exercised
    objects: list[object] = [
        {"id": "d", "model": None},
        reply,
        types.MappingProxyType({"id": "mp", "model": "m"}),
        Hostile(),
        None,
    ]
    keys = ["id", "model", "choices", "usage", "vendor_extra", "missing"]
    for obj in objects:
        view = _fields(obj)
        assert {k: view.get(k) for k in keys} == {k: _get(obj, k) for k in keys}, obj


def test_extraction_reads_extra_fields_of_pydantic_models() -> None:
    reply = completion(
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        usage={
            "prompt_tokens": 30,
            "completion_tokens": 5,
            "total_tokens": 35,
            "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 7},
        },
    )
    ex = extract_response(reply)
    assert (ex.output_text, ex.input_tokens, ex.cache_read_tokens, ex.cache_write_tokens) == ("ok", 30, 10, 7)


def test_make_context_is_the_same_frozen_object_as_the_constructor() -> None:
    args: tuple[Any, ...] = ("out", 0.5, None, 0.01, True, "gpt-4o", {"raw": 1})
    fast = make_context(*args)
    assert type(fast) is CheckContext
    assert fast == CheckContext(*args)
    assert [getattr(fast, f.name) for f in dataclasses.fields(CheckContext)] == list(args)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.output = "changed"  # type: ignore[misc]


class Flip(Check):
    """Passes, then fails, then passes, each time with a new result object for a fail."""

    def __init__(self) -> None:
        super().__init__("flip")
        self.calls = 0
        self._ok = CheckResult(True, 1.0, "fine")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        self.calls += 1
        return self._ok if self.calls % 2 else CheckResult(False, 0.0, f"failed on call {self.calls}")


def _reply(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "choices": [{"message": {"content": text}, "finish_reason": "stop"}]}


def test_evaluation_events_are_shared_while_the_result_repeats_and_encode_the_same() -> None:
    import llmpulse

    flip = Flip()
    with testing.capture(assertions=[check.starts_lowercase(), flip]) as exporter:

        @llmpulse.llm(provider="openai", model="gpt-4o-mini")
        def ask(text: str) -> dict[str, Any]:
            return _reply(text)

        for text in ("hey", "hey", "Hey", "hey"):
            ask(text)
        spans = exporter.llm_spans()
    assert [testing.evaluations(s) for s in spans] == [
        {"starts_lowercase": "pass", "flip": "pass"},
        {"starts_lowercase": "pass", "flip": "fail"},
        {"starts_lowercase": "fail", "flip": "pass"},
        {"starts_lowercase": "pass", "flip": "fail"},
    ]
    first, second, third, fourth = (s.events for s in spans)
    assert first[0].attributes is second[0].attributes is fourth[0].attributes  # the same pass, reused
    assert first[1].attributes is third[1].attributes
    assert third[0].attributes is not first[0].attributes
    assert second[1].attributes is not fourth[1].attributes  # fails are built each time
    assert fourth[1].attributes["gen_ai.evaluation.explanation"] == "failed on call 4"
    assert isinstance(first[0].attributes, SharedAttributes)

    # Protobuf: shared attributes (encoded once, then reused) decode to the same values
    # as the same attributes in a plain dict.
    encoder = ProtobufEncoder({"service.name": "t"}, "llmpulse", "0")
    plain = [_copy_with_plain_events(s) for s in spans]
    for _ in range(2):  # the second pass serves the kept encodings
        shared_req = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        plain_req = ExportTraceServiceRequest.FromString(
            ProtobufEncoder({"service.name": "t"}, "llmpulse", "0").encode(plain)
        )
        assert shared_req == plain_req
    assert first[0].attributes.pb is not None


def _copy_with_plain_events(span: SpanRecord) -> SpanRecord:
    from llmpulse._span import SpanEvent

    copy = SpanRecord(
        span.name, span.trace_id, span.span_id, span.parent_id, span.kind, span.start_ns, dict(span.attributes)
    )
    copy.end_ns = span.end_ns
    copy.events = [SpanEvent(e.name, e.time_ns, dict(e.attributes)) for e in span.events]
    return copy


def test_a_check_that_raises_is_recorded_as_error_every_time() -> None:
    import llmpulse

    def explode(ctx: CheckContext) -> bool:
        raise ValueError("bad check")

    with testing.capture(assertions=[check.custom(explode, name="explode")]) as exporter:

        @llmpulse.llm(provider="openai", model="gpt-4o-mini")
        def ask() -> dict[str, Any]:
            return _reply("hey")

        ask()
        ask()
        spans = exporter.llm_spans()
    assert [testing.evaluations(s) for s in spans] == [{"explode": "error"}, {"explode": "error"}]


def test_init_compiles_the_refusal_patterns_in_the_background() -> None:
    import threading
    import time

    from llmpulse._refusal import _compiled

    _compiled.cache_clear()
    with testing.capture():
        deadline = time.monotonic() + 30
        while _compiled.cache_info().currsize == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _compiled.cache_info().currsize == 1  # compiled with no span recorded
        assert all(t.daemon for t in threading.enumerate() if t.name == "llmpulse-warmup")


class Unhashable(Flip):
    """A check class that defines ``__eq__`` without ``__hash__``: its passes cannot be kept."""

    def __eq__(self, other: object) -> bool:
        return other is self

    __hash__ = None  # type: ignore[assignment]


def test_a_check_that_cannot_be_hashed_is_evaluated_every_time() -> None:
    import llmpulse

    flip = Unhashable()
    with testing.capture(assertions=[flip]) as exporter:

        @llmpulse.llm(provider="openai", model="gpt-4o-mini")
        def ask() -> dict[str, Any]:
            return _reply("hey")

        for _ in range(3):
            ask()
        spans = exporter.llm_spans()
    assert [testing.evaluations(s) for s in spans] == [{"flip": "pass"}, {"flip": "fail"}, {"flip": "pass"}]
    assert spans[0].events[0].attributes is not spans[2].events[0].attributes  # nothing kept
    assert spans[1].attributes["llmpulse.refusal"] is False


def test_the_otel_context_read_on_the_call_path_is_otels_current_context() -> None:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace

    from llmpulse._client import _otel_current_context, _otel_parent

    assert _otel_current_context() is otel_context.get_current()
    assert _otel_parent() is None
    ctx = otel_trace.SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=otel_trace.TraceFlags(1))
    token = otel_context.attach(otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(ctx)))
    try:
        assert _otel_current_context() is otel_context.get_current()
        assert _otel_parent() == ctx
    finally:
        otel_context.detach(token)
    assert _otel_parent() is None
