"""``llmpulse.instrument_openai()`` on the real ``openai`` client, against the fake OpenAI server.

Every call made through the client library becomes one LLM span with the attributes
``@llm`` records: tokens, finish reasons, refusals, cost, assertions, time to first chunk
for streams; errors and timeouts are recorded and re-raised unchanged.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import openai
import pytest

import llmpulse
from fake_openai import FakeOpenAI
from llmpulse import check, testing
from llmpulse._span import STATUS_ERROR, SpanRecord

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    llmpulse.instrument_openai()
    yield
    llmpulse.uninstrument_openai()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply="sure, happy to help!") as f:
        f.prompt_tokens = 120
        f.completion_tokens = 12
        yield f


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(fake: FakeOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)


def only_llm_span(spans: testing.InMemoryExporter) -> SpanRecord:
    (span,) = spans.llm_spans()
    return span


def output_text(span: SpanRecord) -> str:
    messages = json.loads(str(span.attributes["gen_ai.output.messages"]))
    return "".join(p.get("content", "") for m in messages for p in m["parts"] if p["type"] == "text")


def test_chat_completion(client: openai.OpenAI) -> None:
    with testing.capture(assertions=[check.starts_lowercase(name="casual_tone")]) as spans:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "sure, happy to help!"  # the app gets the real object
    span = only_llm_span(spans)
    attrs = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.response.id"] == reply.id
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["llmpulse.refusal"] is False
    assert attrs["llmpulse.cost.usd"] > 0
    assert "gen_ai.request.stream" not in attrs
    assert testing.evaluations(span) == {"casual_tone": "pass"}
    inputs = json.loads(str(attrs["gen_ai.input.messages"]))
    assert [m["role"] for m in inputs] == ["system", "user"]
    assert output_text(span) == "sure, happy to help!"


async def test_async_chat_completion(aclient: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.reply = "Sure!"
    async with aclient:
        with testing.capture(assertions=[check.starts_lowercase()]) as spans:
            reply = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "Sure!"
    span = only_llm_span(spans)
    assert span.attributes["gen_ai.usage.output_tokens"] == 12
    assert testing.evaluations(span) == {"starts_lowercase": "fail"}


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_chat_with_and_without_usage(client: openai.OpenAI, include_usage: bool) -> None:
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    with testing.capture(deterministic=False) as spans:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **extra)  # type: ignore[call-overload]
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip() == "sure, happy to help!"
    span = only_llm_span(spans)
    attrs = span.attributes
    assert attrs["gen_ai.request.stream"] is True
    ttfc = attrs["gen_ai.response.time_to_first_chunk"]
    assert isinstance(ttfc, float)
    assert 0 < ttfc <= (span.end_ns - span.start_ns) / 1e9
    assert output_text(span).strip() == "sure, happy to help!"
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    if include_usage:
        assert attrs["gen_ai.usage.input_tokens"] == 120
        assert attrs["gen_ai.usage.output_tokens"] == 12
    else:
        assert "gen_ai.usage.input_tokens" not in attrs
    assert "llmpulse.stream.closed_early" not in attrs


def test_stream_as_context_manager_closed_early(client: openai.OpenAI) -> None:
    with testing.capture() as spans:
        with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:  # type: ignore[call-overload]
            first = next(iter(stream))
            assert first.choices[0].delta.role == "assistant"
            assert stream.response.status_code == 200  # other attributes reach the real stream
        (span,) = spans.llm_spans()
    assert span.attributes["llmpulse.stream.closed_early"] is True
    assert span.end_ns > span.start_ns


async def test_async_stream(aclient: openai.AsyncOpenAI) -> None:
    async with aclient:
        with testing.capture() as spans:
            stream = await aclient.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts).strip() == "sure, happy to help!"
    span = only_llm_span(spans)
    assert span.attributes["gen_ai.usage.output_tokens"] == 12
    assert "gen_ai.response.time_to_first_chunk" in span.attributes


def test_refusal_and_content_filter_are_provider_refusals(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    with testing.capture() as spans:
        fake.refusal = "I can't help with that."
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        fake.refusal = None
        fake.finish_reason = "content_filter"
        fake.reply = ""
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    refused, filtered = spans.llm_spans()
    assert refused.attributes["llmpulse.refusal"] is True
    assert refused.attributes["llmpulse.refusal.source"] == "provider"
    assert filtered.attributes["llmpulse.refusal"] is True
    assert filtered.attributes["llmpulse.refusal.category"] == "content_filter"


def test_streamed_refusal(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.refusal = "I can't help with that."
    with testing.capture() as spans:
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):  # type: ignore[call-overload]
            pass
    span = only_llm_span(spans)
    assert span.attributes["llmpulse.refusal"] is True
    assert span.attributes["llmpulse.refusal.source"] == "provider"


def test_tool_calls_are_recorded_and_returned(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.reply = None
    fake.tool_calls = [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    with testing.capture() as spans:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        streamed = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))  # type: ignore[call-overload]
    tool_calls = reply.choices[0].message.tool_calls
    assert tool_calls is not None
    assert tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert any(c.choices and c.choices[0].delta.tool_calls for c in streamed)
    for span in spans.llm_spans():
        assert span.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
        (message,) = json.loads(str(span.attributes["gen_ai.output.messages"]))
        (call,) = [p for p in message["parts"] if p["type"] == "tool_call"]
        assert call["name"] == "get_weather"
        assert call["arguments"] == {"city": "Paris"}
        assert span.attributes["llmpulse.refusal"] is False


def test_responses_api(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    with testing.capture() as spans:
        response = client.responses.create(model="gpt-4o-mini", input="hi", instructions="be brief")
        events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
        fake.refusal = "I can't help with that."
        client.responses.create(model="gpt-4o-mini", input="something bad")
    assert response.output_text == "sure, happy to help!"
    assert events[-1].type == "response.completed"
    plain, streamed, refused = spans.llm_spans()
    for span in (plain, streamed):
        assert span.attributes["gen_ai.provider.name"] == "openai"
        assert span.attributes["gen_ai.usage.input_tokens"] == 120
        assert span.attributes["gen_ai.usage.output_tokens"] == 12
        assert output_text(span) == "sure, happy to help!"
        assert span.attributes["llmpulse.refusal"] is False
    assert [m["role"] for m in json.loads(str(plain.attributes["gen_ai.input.messages"]))] == ["system", "user"]
    assert streamed.attributes["gen_ai.request.stream"] is True
    assert "gen_ai.response.time_to_first_chunk" in streamed.attributes
    assert refused.attributes["llmpulse.refusal"] is True


async def test_async_responses_stream(aclient: openai.AsyncOpenAI) -> None:
    async with aclient:
        with testing.capture() as spans:
            stream = await aclient.responses.create(model="gpt-4o-mini", input="hi", stream=True)
            kinds = [event.type async for event in stream]
    assert kinds[-1] == "response.completed"
    span = only_llm_span(spans)
    assert span.attributes["gen_ai.usage.output_tokens"] == 12


def test_embeddings_sync_and_async_without_capturing_the_texts(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    with testing.capture() as spans:
        result = client.embeddings.create(model="text-embedding-3-small", input=["a secret text", "another"])
    assert len(result.data) == 2
    span = only_llm_span(spans)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens > 0
    assert "gen_ai.input.messages" not in span.attributes
    assert "secret" not in repr(span.attributes)


async def test_async_embeddings(aclient: openai.AsyncOpenAI) -> None:
    async with aclient:
        with testing.capture() as spans:
            await aclient.embeddings.create(model="text-embedding-3-small", input="x")
    assert only_llm_span(spans).attributes["gen_ai.operation.name"] == "embeddings"


@pytest.mark.parametrize(
    ("status", "exception"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (400, openai.BadRequestError)],
)
def test_errors_are_recorded_and_reraised_unchanged(
    client: openai.OpenAI, fake: FakeOpenAI, status: int, exception: type[Exception]
) -> None:
    fake.fail_next(status)
    with testing.capture() as spans, pytest.raises(exception):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    span = only_llm_span(spans)
    assert span.status == STATUS_ERROR
    assert span.attributes["error.type"] == f"openai.{exception.__name__}"
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_a_timeout_is_an_error_span(fake: FakeOpenAI) -> None:
    fake.delay = 1.0
    with (
        openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=0.2) as client,
        testing.capture() as spans,
        pytest.raises(openai.APITimeoutError),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert only_llm_span(spans).attributes["error.type"] == "openai.APITimeoutError"


def test_client_retries_honouring_retry_after_are_one_call(fake: FakeOpenAI) -> None:
    fake.fail_next(429, retry_after=0.05)
    with (
        openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=1) as client,
        testing.capture() as spans,
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert len(fake.requests) == 2
    span = only_llm_span(spans)
    assert span.status != STATUS_ERROR
    assert span.attributes["gen_ai.usage.output_tokens"] == 12


def test_mid_stream_failure_ends_the_span_with_the_error(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.break_stream_after = 2
    with testing.capture() as spans, pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):  # type: ignore[call-overload]
            pass
    span = only_llm_span(spans)
    assert span.status == STATUS_ERROR


def test_twice_instrumented_once_recorded_and_uninstrument_restores(client: openai.OpenAI) -> None:
    from openai.resources.chat.completions import Completions

    patched = Completions.create
    llmpulse.instrument_openai()
    assert Completions.create is patched
    with testing.capture() as spans:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        llmpulse.uninstrument_openai()
        assert Completions.create is patched.__llmpulse_original__  # type: ignore[attr-defined]
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert len(spans.llm_spans()) == 1


def test_without_init_calls_go_straight_through(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "sure, happy to help!"


def test_inside_an_llm_function_the_call_is_recorded_once(client: openai.OpenAI) -> None:
    @llmpulse.llm(provider="openai")
    def ask() -> object:
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

    with testing.capture() as spans, llmpulse.span("request"):
        ask()
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    decorated, instrumented = spans.llm_spans()
    request = spans.by_name("request")[0]
    assert decorated.parent_id == instrumented.parent_id == request.span_id
    assert decorated.attributes["gen_ai.usage.output_tokens"] == 12


def test_attributes_block_labels_instrumented_calls(client: openai.OpenAI) -> None:
    prompt = llmpulse.Prompt("greeting", "say hi")
    with (
        testing.capture() as spans,
        llmpulse.attributes(prompt=prompt, user_id="u-7", assertions=[check.max_length(5)]),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    span = only_llm_span(spans)
    assert span.attributes["llmpulse.prompt.version"] == prompt.version
    assert span.attributes["user.id"] == "u-7"
    assert testing.evaluations(span) == {"max_length": "fail"}


def test_missing_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    llmpulse.uninstrument_openai()
    monkeypatch.setitem(sys.modules, "openai", None)  # what `import openai` sees when it is not installed
    with pytest.raises(
        llmpulse.ConfigError, match=r"instrument_openai\(\) needs the openai package.*pip install openai"
    ):
        llmpulse.instrument_openai()
