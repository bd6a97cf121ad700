"""The decorators' contract, checked on the spans they produce (llmpulse.testing)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import orjson
import pytest
from responses import anthropic_message, openai_chunks, openai_completion

import llmpulse
from llmpulse import check, testing
from llmpulse._span import KIND_CLIENT, KIND_INTERNAL, STATUS_ERROR, STATUS_UNSET


def test_sync_call_records_genai_semconv_attributes() -> None:
    response = openai_completion("hi! happy to help.")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def reply(messages: list[dict[str, str]], *, temperature: float = 0.0) -> dict[str, Any]:
        return response

    with testing.capture() as spans:
        result = reply([{"role": "user", "content": "hello"}], temperature=0.2)
    assert result is response
    (span,) = spans.spans
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == KIND_CLIENT
    assert span.status == STATUS_UNSET
    attrs = span.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.response.id"] == "chatcmpl-abc123"
    assert attrs["gen_ai.usage.input_tokens"] == 1200
    assert attrs["gen_ai.usage.output_tokens"] == 40
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 200
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["llmpulse.refusal"] is False
    # gpt-4o-mini: $0.15 in, $0.60 out, $0.075 cached per million tokens.
    expected = (1000 * 0.15 + 200 * 0.075 + 40 * 0.60) / 1e6
    assert attrs["llmpulse.cost.usd"] == pytest.approx(expected)
    assert orjson.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "hello"}]}
    ]
    out = orjson.loads(str(attrs["gen_ai.output.messages"]))
    assert out[0]["role"] == "assistant"
    assert out[0]["parts"][0] == {"type": "text", "content": "hi! happy to help."}
    # the deterministic clock: start and end are distinct reads
    assert span.end_ns > span.start_ns


@pytest.mark.parametrize("long", [False, True])  # short texts and long (cached) ones take different paths
def test_lone_surrogates_in_content_do_not_lose_the_span(long: bool) -> None:
    # Half of a surrogate pair (a stream split an emoji, a bad decode) cannot be UTF-8; the
    # span is kept with "?" in its place, as the OTLP encoders write such strings.
    pad = " and more" * 40 if long else ""
    response = openai_completion("hi \ud800 there" + pad, finish_reason="st\udc00op")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def reply(messages: list[dict[str, Any]]) -> dict[str, Any]:
        return response

    step_input = {"question": "why \udfff?"}
    with testing.capture() as spans:
        reply([{"role": "user", "content": "hey \udfff" + pad}])
        reply([{"role": "user", "content": [{"type": "text", "text": "parts \udfff"}]}])  # the general path
        with llmpulse.span("step") as step:
            step.set_input(step_input)
    assert llmpulse.sdk_stats() == {}
    first, second, step_span = spans.spans
    out = orjson.loads(str(first.attributes["gen_ai.output.messages"]))
    assert out[0]["parts"][0]["content"] == "hi ? there" + pad
    assert out[0]["finish_reason"] == "st?op"
    assert orjson.loads(str(first.attributes["gen_ai.input.messages"]))[0]["parts"][0]["content"] == "hey ?" + pad
    assert "parts ?" in str(second.attributes["gen_ai.input.messages"])
    assert orjson.loads(str(step_span.attributes["llmpulse.input"])) == {"question": "why ??"}


def test_decorator_keeps_signature_and_reraises_the_same_exception() -> None:
    class Boom(Exception):
        pass

    err = Boom("quota")

    @llmpulse.llm(provider="openai", model="gpt-4o")
    def call(prompt: str, n: int = 1) -> str:
        """Docs."""
        raise err

    assert inspect.signature(call) == inspect.signature(call.__wrapped__)  # type: ignore[attr-defined]
    assert call.__doc__ == "Docs."
    with testing.capture() as spans, pytest.raises(Boom) as info:
        call("x")
    assert info.value is err
    (span,) = spans.spans
    assert span.status == STATUS_ERROR
    assert span.status_message == "quota"
    assert span.attributes["error.type"].endswith("Boom")
    assert "llmpulse.refusal" not in span.attributes


async def test_async_function() -> None:
    @llmpulse.llm(provider="anthropic", model="claude-sonnet-4-5")
    async def ask(question: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return anthropic_message("sure, here it is")

    with testing.capture() as spans:
        result = await ask("q")
    assert result["id"] == "msg_01"
    (span,) = spans.spans
    attrs = span.attributes
    assert attrs["gen_ai.provider.name"] == "anthropic"
    # Anthropic counts cached tokens apart; semconv input tokens include them.
    assert attrs["gen_ai.usage.input_tokens"] == 100 + 1000 + 50
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 50
    assert attrs["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert isinstance(attrs["llmpulse.cost.usd"], float)


def test_generator_stream_records_ttft_chunks_and_usage() -> None:
    chunks = openai_chunks("hello there friend")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def stream(q: str):  # type: ignore[no-untyped-def]
        yield from chunks
        return "done"

    with testing.capture() as spans:
        gen = stream("q")
        got = list(gen)
    assert got == chunks
    (span,) = spans.spans
    attrs = span.attributes
    assert attrs["gen_ai.request.stream"] is True
    ttft = attrs["gen_ai.response.time_to_first_chunk"]
    assert isinstance(ttft, float)
    assert 0 < ttft < span.duration_s
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert orjson.loads(str(attrs["gen_ai.output.messages"]))[0]["parts"][0]["content"] == "hello there friend"
    assert "llmpulse.stream.closed_early" not in attrs


def test_generator_return_value_and_send_pass_through() -> None:
    @llmpulse.llm(provider="openai", model="m")
    def echo():  # type: ignore[no-untyped-def]
        got = yield "first"
        got2 = yield f"got {got}"
        return got2

    with testing.capture() as spans:
        gen = echo()
        assert next(gen) == "first"
        assert gen.send("a") == "got a"
        with pytest.raises(StopIteration) as stop:
            gen.send("b")
    assert stop.value.value == "b"
    assert len(spans.spans) == 1


def test_stream_early_break_ends_the_span() -> None:
    closed = []

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def stream():  # type: ignore[no-untyped-def]
        try:
            yield from openai_chunks("one two three four five")
        finally:
            closed.append(True)

    with testing.capture() as spans:
        for i, _chunk in enumerate(stream()):
            if i == 1:
                break
    assert closed == [True]  # the user's generator was closed, not leaked
    (span,) = spans.spans
    assert span.attributes["llmpulse.stream.closed_early"] is True
    assert orjson.loads(str(span.attributes["gen_ai.output.messages"]))[0]["parts"][0]["content"] == "one two"


def test_stream_exception_midway_is_recorded_and_reraised() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def stream():  # type: ignore[no-untyped-def]
        yield openai_chunks("a")[0]
        raise ConnectionError("reset")

    with testing.capture() as spans, pytest.raises(ConnectionError):
        list(stream())
    (span,) = spans.spans
    assert span.status == STATUS_ERROR
    assert span.attributes["error.type"] == "ConnectionError"


async def test_async_generator_stream_and_early_close() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    async def stream():  # type: ignore[no-untyped-def]
        for chunk in openai_chunks("alpha beta gamma"):
            await asyncio.sleep(0)
            yield chunk

    with testing.capture() as spans:
        full = [c async for c in stream()]
        agen = stream()
        async for _ in agen:
            break
        await agen.aclose()
    assert len(full) == 5
    first, second = spans.spans
    assert first.attributes["gen_ai.usage.output_tokens"] == 3
    assert "gen_ai.response.time_to_first_chunk" in first.attributes
    assert second.attributes["llmpulse.stream.closed_early"] is True


def test_nesting_observe_span_and_llm_share_one_trace() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def model_call() -> dict[str, Any]:
        return openai_completion()

    @llmpulse.observe(kind="workflow")
    def handle() -> str | None:
        with llmpulse.span("retrieve", kind="retrieval", top_k=3) as s:
            s.set_attribute("docs", 2)
            s.set_output({"ids": [1, 2]})
        model_call()
        return llmpulse.current_trace_id()

    with testing.capture() as spans:
        trace_hex = handle()
    by_name = {s.name: s for s in spans.spans}
    root = by_name["test_nesting_observe_span_and_llm_share_one_trace.<locals>.handle"]
    retrieve = by_name["retrieve"]
    call = by_name["chat gpt-4o-mini"]
    assert root.parent_id == 0
    assert root.kind == KIND_INTERNAL
    assert retrieve.parent_id == root.span_id
    assert call.parent_id == root.span_id
    assert {root.trace_id_hex, retrieve.trace_id_hex, call.trace_id_hex} == {trace_hex}
    assert retrieve.attributes["llmpulse.span.kind"] == "retrieval"
    assert retrieve.attributes["top_k"] == 3
    assert retrieve.attributes["docs"] == 2
    assert retrieve.attributes["llmpulse.output"] == '{"ids":[1,2]}'
    assert llmpulse.current_trace_id() is None  # nothing leaks out of the block


async def test_concurrent_tasks_do_not_cross_traces() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    async def model_call() -> dict[str, Any]:
        await asyncio.sleep(0.001)
        return openai_completion()

    @llmpulse.observe(name="request")
    async def request() -> None:
        await asyncio.sleep(0)
        await model_call()

    with testing.capture() as spans:
        await asyncio.gather(*(request() for _ in range(20)))
    roots = {s.span_id: s for s in spans.by_name("request")}
    calls = spans.llm_spans()
    assert len(roots) == 20
    assert len(calls) == 20
    assert {c.parent_id for c in calls} == set(roots)
    for c in calls:
        assert c.trace_id == roots[c.parent_id].trace_id


def test_tool_and_agent_kinds_use_semconv_operations() -> None:
    @llmpulse.observe(name="lookup_order", kind="tool")
    def tool() -> int:
        return 1

    with testing.capture() as spans:
        tool()
        with llmpulse.span("planner", kind="agent"):
            pass
    tool_span, agent_span = spans.spans
    assert tool_span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool_span.attributes["gen_ai.tool.name"] == "lookup_order"
    assert agent_span.attributes["gen_ai.operation.name"] == "invoke_agent"


def test_span_records_exception_and_reraises() -> None:
    with testing.capture() as spans, pytest.raises(KeyError), llmpulse.span("step"):
        raise KeyError("x")
    (s,) = spans.spans
    assert s.status == STATUS_ERROR
    assert s.attributes["error.type"] == "KeyError"


def test_without_init_everything_passes_through() -> None:
    response = openai_completion()

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call() -> dict[str, Any]:
        return response

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def stream():  # type: ignore[no-untyped-def]
        yield from [1, 2]

    assert call() is response
    assert list(stream()) == [1, 2]
    with llmpulse.span("x") as s:
        s.set_attribute("a", 1)
        assert s.trace_id is None
    assert llmpulse.current_trace_id() is None
    llmpulse.feedback("0" * 31 + "1", "thumbs", True)  # no client: a no-op
    assert llmpulse.flush() is True


def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMPULSE_DISABLED", "1")
    exporter = testing.InMemoryExporter()
    assert llmpulse.init(service="svc", exporter=exporter) is False

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call() -> dict[str, Any]:
        return openai_completion()

    call()
    assert exporter.spans == []


def test_model_taken_from_call_kwargs_when_not_decorated() -> None:
    @llmpulse.llm(provider="openai")
    def create(**kwargs: Any) -> dict[str, Any]:
        return openai_completion(model="gpt-4o-2024-08-06")

    with testing.capture() as spans:
        create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    (s,) = spans.spans
    assert s.name == "chat gpt-4o"
    assert s.attributes["gen_ai.request.model"] == "gpt-4o"


def test_messages_list_mutated_after_the_call_is_recorded_as_sent() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def create(*, messages: list[dict[str, str]]) -> dict[str, Any]:
        return openai_completion("answer")

    history = [{"role": "user", "content": "question"}]
    with testing.capture() as spans:
        create(messages=history)
        history.append({"role": "assistant", "content": "answer"})
        (s,) = spans.spans
    sent = orjson.loads(str(s.attributes["gen_ai.input.messages"]))
    assert [m["role"] for m in sent] == ["user"]


def test_assertions_global_and_per_call_become_evaluation_events() -> None:
    def explode(output: str) -> bool:
        raise RuntimeError("bug in my check")

    @llmpulse.llm(
        provider="openai",
        model="gpt-4o-mini",
        assertions=[check.starts_lowercase(), check.custom(explode, name="broken")],
    )
    def call(text: str) -> dict[str, Any]:
        return openai_completion(text)

    with testing.capture(assertions=[check.max_length(10)]) as spans:
        assert call("hey")["choices"][0]["message"]["content"] == "hey"
        call("Hello there, a long reply")
    ok, bad = spans.spans
    assert testing.evaluations(ok) == {"max_length": "pass", "starts_lowercase": "pass", "broken": "error"}
    assert testing.evaluations(bad) == {"max_length": "fail", "starts_lowercase": "fail", "broken": "error"}
    event = next(e for e in bad.events if e.attributes["gen_ai.evaluation.name"] == "starts_lowercase")
    assert event.name == "gen_ai.evaluation.result"
    assert event.attributes["gen_ai.evaluation.score.value"] == 0.0
    assert event.attributes["gen_ai.evaluation.score.label"] == "fail"
    assert event.attributes["gen_ai.evaluation.explanation"]
    broken = next(e for e in bad.events if e.attributes["gen_ai.evaluation.name"] == "broken")
    assert "gen_ai.evaluation.score.value" not in broken.attributes
    assert "RuntimeError" in str(broken.attributes["gen_ai.evaluation.explanation"])


def test_refusal_provider_signals_win_over_the_heuristic() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call(kind: str) -> dict[str, Any]:
        if kind == "refusal":
            return openai_completion(refusal="I can't help with that.")
        if kind == "filter":
            return openai_completion("", finish_reason="content_filter")
        if kind == "heuristic":
            return openai_completion("I'm sorry, but I can't assist with that request.")
        return openai_completion("I can't wait to help you with your order!")

    @llmpulse.llm(provider="anthropic", model="claude-sonnet-4-5")
    def claude() -> dict[str, Any]:
        return anthropic_message("", stop_reason="refusal")

    with testing.capture(assertions=[check.not_refusal()]) as spans:
        for kind in ("refusal", "filter", "heuristic", "fine"):
            call(kind)
        claude()
    refusal, filtered, heuristic, fine, anthropic = spans.spans
    assert refusal.attributes["llmpulse.refusal"] is True
    assert refusal.attributes["llmpulse.refusal.source"] == "provider"
    assert filtered.attributes["llmpulse.refusal.source"] == "provider"
    assert filtered.attributes["llmpulse.refusal.category"] == "content_filter"
    assert heuristic.attributes["llmpulse.refusal.source"] == "heuristic"
    assert fine.attributes["llmpulse.refusal"] is False
    assert "llmpulse.refusal.source" not in fine.attributes
    assert anthropic.attributes["llmpulse.refusal.source"] == "provider"
    assert testing.evaluations(heuristic) == {"not_refusal": "fail"}
    assert testing.evaluations(fine) == {"not_refusal": "pass"}


def test_unknown_model_gets_no_cost_rather_than_zero() -> None:
    @llmpulse.llm(provider="acme", model="acme-secret-1")
    def call() -> dict[str, Any]:
        return openai_completion(model="acme-secret-1")

    with testing.capture() as spans:
        call()
    (s,) = spans.spans
    assert "llmpulse.cost.usd" not in s.attributes
    assert s.attributes["gen_ai.usage.input_tokens"] == 1200


def test_price_overrides_apply() -> None:
    @llmpulse.llm(provider="acme", model="acme-secret-1")
    def call() -> dict[str, Any]:
        return openai_completion(model="acme-secret-1", prompt_tokens=1_000_000, completion_tokens=1_000_000, cached=0)

    with testing.capture(prices={"acme-secret-1": {"input": 1.0, "output": 2.0}}) as spans:
        call()
    assert spans.spans[0].attributes["llmpulse.cost.usd"] == pytest.approx(3.0)


def test_prompt_name_and_version_on_the_span() -> None:
    prompt = llmpulse.Prompt("support", "You help with {product}.")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini", prompt=prompt)
    def call() -> dict[str, Any]:
        return openai_completion()

    with testing.capture() as spans:
        call()
    attrs = spans.spans[0].attributes
    assert attrs["gen_ai.prompt.name"] == "support"
    assert attrs["llmpulse.prompt.version"] == prompt.version


def test_capture_content_off_records_no_text_but_still_checks() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini", assertions=[check.contains("secret")])
    def call(messages: list[dict[str, str]]) -> dict[str, Any]:
        return openai_completion("the secret is 42")

    with testing.capture(capture_content=False) as spans:
        call([{"role": "user", "content": "tell me"}])
    attrs = spans.spans[0].attributes
    assert "gen_ai.input.messages" not in attrs
    assert "gen_ai.output.messages" not in attrs
    assert testing.evaluations(spans.spans[0]) == {"contains": "pass"}


def test_redaction_masks_content_before_export_and_checks_see_the_raw_text() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini", assertions=[check.contains("jane@example.com")])
    def call(messages: list[dict[str, str]]) -> dict[str, Any]:
        return openai_completion("we emailed jane@example.com")

    with testing.capture() as spans:
        call([{"role": "user", "content": "my card is 4111 1111 1111 1111, key sk-proj-abcdefghijklmnop1234"}])
    attrs = spans.spans[0].attributes
    sent = str(attrs["gen_ai.input.messages"])
    out = str(attrs["gen_ai.output.messages"])
    assert "4111" not in sent
    assert "sk-proj-abcdefghijklmnop1234" not in sent
    assert "jane@example.com" not in out
    assert testing.evaluations(spans.spans[0]) == {"contains": "pass"}


def test_custom_redactor_and_a_broken_one_never_leaks() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call(prompt: str) -> dict[str, Any]:
        return openai_completion("reply")

    with testing.capture(redact=lambda text: text.replace("Acme", "[CLIENT]")) as spans:
        call("Acme wants a refund")
    assert "[CLIENT] wants a refund" in str(spans.spans[0].attributes["gen_ai.input.messages"])

    def broken(text: str) -> str:
        raise ValueError("redactor bug")

    with testing.capture(redact=broken) as spans:
        assert call("private text")["id"] == "chatcmpl-abc123"
    sent = str(spans.spans[0].attributes["gen_ai.input.messages"])
    assert "private text" not in sent
    assert "[REDACTION_FAILED]" in sent
    assert llmpulse.sdk_stats()["redact_errors"] >= 1


def test_content_is_truncated_with_a_marker() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call(prompt: str) -> dict[str, Any]:
        return openai_completion("ok")

    with testing.capture(max_content_chars=100, redact=False) as spans:
        call("x" * 1000)
    content = orjson.loads(str(spans.spans[0].attributes["gen_ai.input.messages"]))[0]["parts"][0]["content"]
    assert content == "x" * 100 + "…[truncated 900 chars]"


def test_broken_response_object_never_breaks_the_call() -> None:
    class Weird:
        @property
        def choices(self) -> Any:
            raise RuntimeError("property explodes")

        usage = "not a usage"

    weird = Weird()

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call() -> Weird:
        return weird

    with testing.capture() as spans:
        assert call() is weird
    (s,) = spans.spans
    assert s.attributes["llmpulse.refusal"] is False
    assert "gen_ai.usage.input_tokens" not in s.attributes


def test_reinit_replaces_the_client_and_flushes_the_old_one() -> None:
    first = testing.InMemoryExporter()
    second = testing.InMemoryExporter()

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call() -> dict[str, Any]:
        return openai_completion()

    llmpulse.init(service="one", exporter=first, export_interval=60)
    call()
    llmpulse.init(service="two", exporter=second, export_interval=60)
    call()
    assert len(first.spans) == 1
    assert len(second.spans) == 1


def test_exact_span_with_deterministic_ids_and_clock() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call() -> dict[str, Any]:
        return openai_completion()

    with testing.capture(capture_content=False) as spans:
        call()
    d = testing.span_dict(spans.spans[0])
    assert d["trace_id"] == "00000000000000000000000000000001"
    assert d["span_id"] == "0000000000000001"
    assert d["parent_span_id"] is None
    assert d["end_ns"] - d["start_ns"] == 1_000_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"provider": 3}, "provider"),
        ({"model": ""}, "model"),
        ({"assertions": ["starts_lowercase"]}, "assertions"),
        ({"prompt": "a string"}, "prompt"),
    ],
)
def test_bad_decorator_arguments_raise_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(llmpulse.ConfigError, match=message):
        llmpulse.llm(**kwargs)


def test_bad_span_kind_raises_config_error() -> None:
    with pytest.raises(llmpulse.ConfigError, match="kind must be one of"):
        llmpulse.observe(kind="weird")(lambda: None)


@pytest.mark.parametrize("as_keyword", [True, False])
def test_the_function_gets_the_very_messages_list_it_was_called_with(as_keyword: bool) -> None:
    """The decorator is transparent: a function that appends to its messages changes the
    caller's list, as it would undecorated; the span records what was sent."""

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def create(messages: list[dict[str, str]]) -> dict[str, Any]:
        received.append(messages)
        messages.append({"role": "assistant", "content": "answer"})
        return openai_completion("answer")

    received: list[Any] = []
    history = [{"role": "user", "content": "question"}]
    with testing.capture() as spans:
        if as_keyword:
            create(messages=history)
        else:
            create(history)
        (s,) = spans.spans
    assert received[0] is history
    assert len(history) == 2
    assert [m["role"] for m in orjson.loads(str(s.attributes["gen_ai.input.messages"]))] == ["user"]


def test_positional_messages_list_mutated_after_the_call_is_recorded_as_sent() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def create(messages: list[dict[str, str]]) -> dict[str, Any]:
        return openai_completion("answer")

    history = [{"role": "user", "content": "question"}]
    with testing.capture() as spans:
        create(history)
        history.append({"role": "assistant", "content": "answer"})
        (s,) = spans.spans
    assert len(orjson.loads(str(s.attributes["gen_ai.input.messages"]))) == 1
    assert len(history) == 2  # the app's own list is untouched by the SDK


@pytest.mark.parametrize("as_keyword", [True, False])
def test_a_call_in_flight_keeps_only_the_containers_it_needs_gc_tracked(as_keyword: bool) -> None:
    """Calls queued in a burst outlive young collections: every GC-tracked container they keep
    alive is promoted and counts towards the next full collection (tens of ms with a big app's
    heap). An in-flight call keeps its record, its call, and the copy of the messages (with the
    arguments or keywords holding it); its events have no list until the worker adds one."""
    import gc

    from llmpulse._client import current_span

    seen: list[list[str]] = []

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def create(messages: list[dict[str, str]]) -> dict[str, Any]:
        span = current_span()
        assert span is not None
        gc.collect()
        call = span.llm
        owned = {"record": span, "call": call, "args": call.args, "kwargs": call.kwargs, "events": span.events}
        owned["attributes"] = span.attributes
        owned["copy"] = call.kwargs["messages"] if as_keyword else call.args[0]
        assert owned["copy"] is not messages
        seen.append(sorted(name for name, obj in owned.items() if gc.is_tracked(obj)))
        return openai_completion("answer")

    history = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "question"}]
    with testing.capture() as spans:
        create(messages=history) if as_keyword else create(history)
        (s,) = spans.spans
    holder = "kwargs" if as_keyword else "args"
    assert seen == [sorted(["call", "copy", holder, "record"])]
    assert len(orjson.loads(str(s.attributes["gen_ai.input.messages"]))) == 2
    assert [e.name for e in s.events] == []  # no assertions: still no list
