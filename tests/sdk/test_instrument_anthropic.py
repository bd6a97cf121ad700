"""``llmpulse.instrument_anthropic()`` on the real ``anthropic`` client, against the fake Anthropic server:
``messages.create`` (sync, async, ``stream=True``) and the ``messages.stream()`` helper, read every way."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import anthropic
import pytest

import llmpulse
from fake_anthropic import FakeAnthropic
from llmpulse import check, testing
from llmpulse._span import STATUS_ERROR, SpanRecord

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    llmpulse.instrument_anthropic()
    yield
    llmpulse.uninstrument_anthropic()


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(reply="sure, happy to help!") as f:
        f.input_tokens = 90
        f.output_tokens = 11
        f.cache_read_input_tokens = 30
        yield f


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0) as c:
        yield c


@pytest.fixture
def aclient(fake: FakeAnthropic) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0)


def only_llm_span(spans: testing.InMemoryExporter) -> SpanRecord:
    (span,) = spans.llm_spans()
    return span


def output_text(span: SpanRecord) -> str:
    messages = json.loads(str(span.attributes["gen_ai.output.messages"]))
    return "".join(p.get("content", "") for m in messages for p in m["parts"] if p["type"] == "text")


def assert_usage(span: SpanRecord) -> None:
    attrs = span.attributes
    assert attrs["gen_ai.usage.input_tokens"] == 90 + 30  # semconv: input includes cached input
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 30
    assert attrs["gen_ai.usage.output_tokens"] == 11


def test_messages_create(client: anthropic.Anthropic) -> None:
    with testing.capture(assertions=[check.starts_lowercase()]) as spans:
        message = client.messages.create(
            model="claude-sonnet-4-20250514",
            max_tokens=100,
            system="be brief",
            messages=MESSAGES,  # type: ignore[arg-type]
        )
    assert message.content[0].text == "sure, happy to help!"  # type: ignore[union-attr]
    span = only_llm_span(spans)
    attrs = span.attributes
    assert span.name == "chat claude-sonnet-4-20250514"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.response.id"] == message.id
    assert attrs["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert_usage(span)
    assert attrs["llmpulse.cost.usd"] > 0
    assert testing.evaluations(span) == {"starts_lowercase": "pass"}
    assert [m["role"] for m in json.loads(str(attrs["gen_ai.input.messages"]))] == ["system", "user"]
    assert output_text(span) == "sure, happy to help!"


async def test_async_messages_create_and_stream(aclient: anthropic.AsyncAnthropic) -> None:
    async with aclient:
        with testing.capture() as spans:
            await aclient.messages.create(model="claude-sonnet-4-20250514", max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
            stream = await aclient.messages.create(
                model="claude-sonnet-4-20250514",
                max_tokens=100,
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
            )
            kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    plain, streamed = spans.llm_spans()
    assert_usage(plain)
    assert_usage(streamed)
    assert streamed.attributes["gen_ai.request.stream"] is True
    assert "gen_ai.response.time_to_first_chunk" in streamed.attributes
    assert output_text(streamed) == "sure, happy to help!"


def test_create_stream_true(client: anthropic.Anthropic) -> None:
    with testing.capture(deterministic=False) as spans:
        stream = client.messages.create(
            model="claude-sonnet-4-20250514",
            max_tokens=100,
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
        )
        text = "".join(e.delta.text for e in stream if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == "sure, happy to help!"
    span = only_llm_span(spans)
    assert_usage(span)
    assert span.attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    ttfc = span.attributes["gen_ai.response.time_to_first_chunk"]
    assert isinstance(ttfc, float)
    assert 0 < ttfc <= (span.end_ns - span.start_ns) / 1e9


@pytest.mark.parametrize("read", ["events", "text_stream", "get_final_message", "until_done"])
def test_messages_stream_helper_whichever_way_it_is_read(client: anthropic.Anthropic, read: str) -> None:
    with testing.capture(assertions=[check.max_length(1000)]) as spans:
        with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
            if read == "events":
                for _ in stream:
                    pass
            elif read == "text_stream":
                assert "".join(stream.text_stream) == "sure, happy to help!"
            elif read == "get_final_message":
                assert stream.get_final_message().usage.output_tokens == 11
            else:
                stream.until_done()
        span = only_llm_span(spans)
    assert_usage(span)
    assert span.attributes["gen_ai.request.stream"] is True
    assert "gen_ai.response.time_to_first_chunk" in span.attributes
    assert output_text(span) == "sure, happy to help!"
    assert testing.evaluations(span) == {"max_length": "pass"}
    assert "llmpulse.stream.closed_early" not in span.attributes


def test_messages_stream_left_early(client: anthropic.Anthropic) -> None:
    with testing.capture() as spans:
        with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
            next(iter(stream))
        span = only_llm_span(spans)
    assert span.attributes["llmpulse.stream.closed_early"] is True


async def test_async_messages_stream_helper(aclient: anthropic.AsyncAnthropic) -> None:
    async with aclient:
        with testing.capture() as spans:
            async with aclient.messages.stream(
                model="claude-sonnet-4-20250514",
                max_tokens=100,
                messages=MESSAGES,  # type: ignore[arg-type]
            ) as stream:
                text = "".join([t async for t in stream.text_stream])
    assert text == "sure, happy to help!"
    span = only_llm_span(spans)
    assert_usage(span)
    assert "gen_ai.response.time_to_first_chunk" in span.attributes


@pytest.mark.parametrize("stream", [False, True])
def test_refusal_stop_reason(client: anthropic.Anthropic, fake: FakeAnthropic, stream: bool) -> None:
    fake.refusal = True
    fake.reply = ""
    with testing.capture() as spans:
        if stream:
            with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=10, messages=MESSAGES) as s:  # type: ignore[arg-type]
                s.until_done()
        else:
            client.messages.create(model="claude-sonnet-4-20250514", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    span = only_llm_span(spans)
    assert span.attributes["llmpulse.refusal"] is True
    assert span.attributes["llmpulse.refusal.source"] == "provider"
    assert span.attributes["gen_ai.response.finish_reasons"] == ["refusal"]


def test_tool_use(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.reply = ""
    fake.tool_uses = [{"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]
    with testing.capture() as spans:
        message = client.messages.create(model="claude-sonnet-4-20250514", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
        with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=10, messages=MESSAGES) as s:  # type: ignore[arg-type]
            final = s.get_final_message()
    assert message.content[0].type == "tool_use"
    assert final.content[0].type == "tool_use"
    for span in spans.llm_spans():
        assert span.attributes["gen_ai.response.finish_reasons"] == ["tool_use"]
        (out,) = json.loads(str(span.attributes["gen_ai.output.messages"]))
        (call,) = [p for p in out["parts"] if p["type"] == "tool_call"]
        assert call["name"] == "get_weather"
        assert call["arguments"] == {"city": "Paris"}


@pytest.mark.parametrize(
    ("status", "exception"), [(429, anthropic.RateLimitError), (500, anthropic.InternalServerError)]
)
def test_errors_are_recorded_and_reraised(
    client: anthropic.Anthropic, fake: FakeAnthropic, status: int, exception: type[Exception]
) -> None:
    fake.fail_next(status)
    fake.fail_next(status)
    with testing.capture() as spans:
        with pytest.raises(exception):
            client.messages.create(model="claude-sonnet-4-20250514", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
        with pytest.raises(exception):  # noqa: SIM117
            with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=10, messages=MESSAGES):  # type: ignore[arg-type]
                pass
    for span in spans.llm_spans():
        assert span.status == STATUS_ERROR
        assert span.attributes["error.type"] == f"anthropic.{exception.__name__}"


def test_uninstrument_restores_and_missing_library_is_clear(
    client: anthropic.Anthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anthropic.resources.messages import Messages

    patched = Messages.create
    llmpulse.uninstrument_anthropic()
    assert Messages.create is patched.__llmpulse_original__  # type: ignore[attr-defined]
    with testing.capture() as spans:
        client.messages.create(model="claude-sonnet-4-20250514", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    assert spans.llm_spans() == []
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(llmpulse.ConfigError, match=r"needs the anthropic package"):
        llmpulse.instrument_anthropic()
