"""Self-tests of the fake OpenAI and Anthropic servers, driven by the real ``openai`` and ``anthropic`` clients.

Besides the clients parsing the answers (which they do leniently), every payload the fakes produce is also
validated strictly against the clients' pydantic models.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from fake_anthropic import FakeAnthropic
from fake_openai import Call, FakeOpenAI

MESSAGES: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_CALL = {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}
TIME_CALL = {"id": "call_t2", "name": "get_time", "arguments": {"tz": "Europe/Paris"}}
WEATHER_USE = {"id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "days": [1, 2]}}
CLAUDE = "claude-sonnet-4-20250514"


@pytest.fixture
def ofake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply="It is sunny in Paris today.") as fake:
        yield fake


@pytest.fixture
def oclient(ofake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=ofake.base_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def afake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(reply="It is sunny in Paris today.") as fake:
        yield fake


@pytest.fixture
def aclient(afake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=afake.base_url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


def _chat(client: openai.OpenAI, **kwargs: Any) -> ChatCompletion:
    done: ChatCompletion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kwargs)
    return done


def _chat_stream(client: openai.OpenAI, **kwargs: Any) -> list[ChatCompletionChunk]:
    return list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **kwargs))


def _message(client: anthropic.Anthropic, **kwargs: Any) -> Message:
    message: Message = client.messages.create(model=CLAUDE, max_tokens=256, messages=MESSAGES, **kwargs)
    return message


def _message_events(client: anthropic.Anthropic) -> Iterator[RawMessageStreamEvent]:
    yield from client.messages.create(model=CLAUDE, max_tokens=256, messages=MESSAGES, stream=True)


def _streamed_arguments(chunks: list[ChatCompletionChunk]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for frag in choice.delta.tool_calls or []:
                call = calls.setdefault(frag.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += frag.id or ""
                call["name"] += (frag.function and frag.function.name) or ""
                call["arguments"] += (frag.function and frag.function.arguments) or ""
    return calls


# --- OpenAI: chat completions ---------------------------------------------------------------------------------


def test_chat_completion(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    done = _chat(oclient, temperature=0)
    assert done.choices[0].message.content == "It is sunny in Paris today."
    assert done.choices[0].message.refusal is None
    assert done.choices[0].finish_reason == "stop"
    assert done.model == "gpt-4o-mini-2024-07-18"
    assert done.id.startswith("chatcmpl-")
    assert done.usage is not None
    assert done.usage.prompt_tokens == len(MESSAGES[0]["content"]) // 4 + 1
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    assert ofake.requests == [{"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0}]
    assert ofake.calls == [Call("/v1/chat/completions", ofake.requests[0])]
    path, body = ofake.calls[0]
    assert (path, body["model"]) == ("/v1/chat/completions", "gpt-4o-mini")
    assert ofake.paths == ["/v1/chat/completions"]
    assert ofake.headers[0]["authorization"] == "Bearer sk-test"


def test_chat_stream_text_and_usage(oclient: openai.OpenAI) -> None:
    chunks = _chat_stream(oclient, stream_options={"include_usage": True})
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "It is sunny in Paris today."
    assert len(chunks) > 4
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    plain = _chat_stream(oclient)
    assert plain[-1].choices[0].finish_reason == "stop"  # no usage chunk unless asked for


def test_chat_refusal(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.refusal = "I'm sorry, I can't help with that."
    message = _chat(oclient).choices[0].message
    assert (message.content, message.refusal) == (None, "I'm sorry, I can't help with that.")
    chunks = _chat_stream(oclient)
    assert "".join(c.choices[0].delta.refusal or "" for c in chunks) == "I'm sorry, I can't help with that."
    assert all(not c.choices[0].delta.content for c in chunks)


def test_chat_tool_calls(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.reply = None
    ofake.tool_calls = [WEATHER_CALL, TIME_CALL]
    choice = _chat(oclient).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("call_w1", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ("call_t2", "get_time", {"tz": "Europe/Paris"}),
    ]
    chunks = _chat_stream(oclient)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert sum(len(c.choices[0].delta.tool_calls or []) for c in chunks) > 4  # arguments come in fragments
    assert _streamed_arguments(chunks) == {
        0: {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
        1: {"id": "call_t2", "name": "get_time", "arguments": '{"tz": "Europe/Paris"}'},
    }
    with oclient.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert [c.function.name for c in final.choices[0].message.tool_calls or []] == ["get_weather", "get_time"]


@pytest.mark.parametrize("reason", ["length", "content_filter"])
def test_chat_finish_reason(ofake: FakeOpenAI, oclient: openai.OpenAI, reason: str) -> None:
    ofake.finish_reason = reason
    assert _chat(oclient).choices[0].finish_reason == reason
    assert _chat_stream(oclient)[-1].choices[0].finish_reason == reason


def test_chat_cached_and_reasoning_tokens(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.cached_tokens, ofake.reasoning_tokens = 1024, 64
    usage = _chat(oclient).usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    assert usage.completion_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1024
    assert usage.completion_tokens_details.reasoning_tokens == 64
    assert usage.prompt_tokens > 1024
    assert usage.completion_tokens > 64
    ofake.prompt_tokens, ofake.completion_tokens = 2000, 100
    streamed = _chat_stream(oclient, stream_options={"include_usage": True})[-1].usage
    assert streamed is not None
    assert (streamed.prompt_tokens, streamed.completion_tokens, streamed.total_tokens) == (2000, 100, 2100)


# --- OpenAI: responses ----------------------------------------------------------------------------------------


def test_responses_create(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.cached_tokens, ofake.reasoning_tokens = 8, 16
    response = oclient.responses.create(model="gpt-4o-mini", input="weather in Paris?", instructions="be brief")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.output_text == "It is sunny in Paris today."
    assert response.output[0].type == "message"
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 8
    assert response.usage.output_tokens_details.reasoning_tokens == 16
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.instructions == "be brief"
    assert ofake.paths == ["/v1/responses"]


def test_responses_stream_events(oclient: openai.OpenAI) -> None:
    events = list(oclient.responses.create(model="gpt-4o-mini", input="weather in Paris?", stream=True))
    types = [e.type for e in events]
    deltas = types.count("response.output_text.delta")
    assert deltas > 2
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "It is sunny in Paris today."
    first, last = events[0], events[-1]
    assert first.type == "response.created"
    assert first.response.status == "in_progress"
    assert last.type == "response.completed"
    assert last.response.id == first.response.id
    assert last.response.usage is not None
    assert last.response.usage.output_tokens > 0
    assert last.response.output_text == "It is sunny in Paris today."
    with oclient.responses.stream(model="gpt-4o-mini", input="weather in Paris?") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "It is sunny in Paris today."


def test_responses_refusal(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.refusal = "I can't help with that."
    response = oclient.responses.create(model="gpt-4o-mini", input="bad idea")
    message = response.output[0]
    assert message.type == "message"
    assert message.content[0].type == "refusal"
    assert message.content[0].refusal == "I can't help with that."
    events = list(oclient.responses.create(model="gpt-4o-mini", input="bad idea", stream=True))
    refusal = "".join(e.delta for e in events if e.type == "response.refusal.delta")
    assert refusal == "I can't help with that."
    assert "response.refusal.done" in [e.type for e in events]
    assert "response.output_text.delta" not in [e.type for e in events]


def test_responses_function_calls(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.reply = None
    ofake.tool_calls = [WEATHER_CALL]
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False}]
    response = oclient.responses.create(model="gpt-4o-mini", input="weather?", tools=tools)
    (call,) = response.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "call_w1",
        "get_weather",
        {"city": "Paris", "unit": "celsius"},
    )
    assert response.tools[0].name == "get_weather"  # type: ignore[union-attr]
    events = list(oclient.responses.create(model="gpt-4o-mini", input="weather?", tools=tools, stream=True))
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert arguments == WEATHER_CALL["arguments"]
    assert "response.function_call_arguments.done" in [e.type for e in events]
    with oclient.responses.stream(model="gpt-4o-mini", input="weather?", tools=tools) as stream:
        final = stream.get_final_response()
    assert final.output[0].type == "function_call"


def test_responses_incomplete(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.finish_reason = "length"
    response = oclient.responses.create(model="gpt-4o-mini", input="write a novel", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    events = list(oclient.responses.create(model="gpt-4o-mini", input="write a novel", stream=True))
    assert events[-1].type == "response.incomplete"


# --- OpenAI: embeddings ---------------------------------------------------------------------------------------


def test_embeddings(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    default = oclient.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    assert ofake.requests[-1]["encoding_format"] == "base64"  # what the client asks for by default
    floats = oclient.embeddings.create(
        model="text-embedding-3-small", input=["hello", "world"], encoding_format="float"
    )
    assert ofake.requests[-1]["encoding_format"] == "float"
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    assert [d.index for d in default.data] == [0, 1]
    assert all(len(d.embedding) == 8 and all(isinstance(x, float) for x in d.embedding) for d in default.data)
    assert default.data[0].embedding != default.data[1].embedding
    assert sum(x * x for x in default.data[0].embedding) == pytest.approx(1.0, rel=1e-5)
    assert default.model == "text-embedding-3-small"
    assert default.usage.prompt_tokens == default.usage.total_tokens == 4
    one = oclient.embeddings.create(model="text-embedding-3-large", input="hello", dimensions=3)
    assert len(one.data) == 1
    assert len(one.data[0].embedding) == 3
    tokens = oclient.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]])
    assert (len(tokens.data), tokens.usage.prompt_tokens) == (2, 5)


# --- OpenAI: async --------------------------------------------------------------------------------------------


async def test_async_openai(ofake: FakeOpenAI) -> None:
    ofake.tool_calls = [WEATHER_CALL]
    async with openai.AsyncOpenAI(base_url=ofake.base_url, api_key="sk-test", max_retries=0) as client:
        done = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert done.choices[0].finish_reason == "tool_calls"
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        assert _streamed_arguments(chunks)[0]["arguments"] == WEATHER_CALL["arguments"]
        assert chunks[-1].usage is not None
        events = await client.responses.create(model="gpt-4o-mini", input="hi", stream=True)
        types = [e.type async for e in events]
        assert types[0] == "response.created"
        assert types[-1] == "response.completed"
        embedded = await client.embeddings.create(model="text-embedding-3-small", input="hi")
        assert len(embedded.data[0].embedding) == 8
        ofake.fail_next(429)
        with pytest.raises(openai.RateLimitError):
            await client.responses.create(model="gpt-4o-mini", input="hi")


# --- OpenAI: failures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
def test_openai_error_statuses(
    ofake: FakeOpenAI, oclient: openai.OpenAI, status: int, error: type[openai.APIStatusError], error_type: str
) -> None:
    ofake.fail_next(status, retry_after=7, message="scripted failure")
    with pytest.raises(error) as caught:
        _chat(oclient)
    assert caught.value.status_code == status
    assert caught.value.message.endswith("scripted failure")
    assert caught.value.type == error_type
    assert isinstance(caught.value.body, dict)
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.request_id is not None
    assert _chat(oclient).choices[0].message.content  # only the next request failed


def test_openai_fail_next_spans_endpoints(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.fail_next(500, times=2, error_type="server_error", code="boom")
    with pytest.raises(openai.InternalServerError) as caught:
        oclient.embeddings.create(model="text-embedding-3-small", input="hi")
    assert caught.value.code == "boom"
    with pytest.raises(openai.InternalServerError):
        list(oclient.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert oclient.responses.create(model="gpt-4o-mini", input="hi").status == "completed"
    assert ofake.paths == ["/v1/embeddings", "/v1/responses", "/v1/responses"]
    assert len(ofake.requests) == len(ofake.headers) == len(ofake.times) == 3


def test_openai_retry_honours_retry_after(ofake: FakeOpenAI) -> None:
    ofake.fail_next(429, retry_after=0.1)
    with openai.OpenAI(base_url=ofake.base_url, api_key="sk-test", max_retries=1) as client:
        assert _chat(client).choices[0].message.content == "It is sunny in Paris today."
    assert len(ofake.requests) == 2
    assert 0.09 <= ofake.times[1] - ofake.times[0] < 0.37  # the client's own backoff would be >= 0.375 s
    assert ofake.headers[1]["x-stainless-retry-count"] == "1"


def test_openai_timeout(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.delay = 1
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        _chat(oclient, timeout=0.2)
    assert time.monotonic() - started < 0.9


def test_openai_unknown_path(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oclient.models.list()
    assert caught.value.type == "invalid_request_error"
    assert ofake.calls == [Call("/v1/models", {})]


def test_openai_broken_and_failed_streams(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.break_stream_after = 3
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):
        received.extend(_stream_into(oclient))
    assert len(received) == 3
    with pytest.raises(openai.APIConnectionError):
        list(oclient.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    ofake.break_stream_after = None
    ofake.stream_error_after = 2
    with pytest.raises(openai.APIError, match="server had an error"):
        _chat_stream(oclient)
    events = list(oclient.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error"]
    assert events[-1].sequence_number == 2


def _stream_into(client: openai.OpenAI) -> Iterator[ChatCompletionChunk]:
    yield from client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)


def test_openai_chunk_delay(ofake: FakeOpenAI, oclient: openai.OpenAI) -> None:
    ofake.chunk_delay = 0.03
    arrivals = [time.monotonic() for _ in _stream_into(oclient)]
    assert arrivals[-1] - arrivals[0] >= 0.03 * (len(arrivals) - 1) * 0.9


# --- Anthropic ------------------------------------------------------------------------------------------------


def test_anthropic_message(afake: FakeAnthropic, aclient: anthropic.Anthropic) -> None:
    message = _message(aclient, system="be brief")
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == CLAUDE
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "It is sunny in Paris today."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    assert afake.paths == ["/v1/messages"]  # base_url has no /v1: the client adds it
    assert afake.requests[0]["system"] == "be brief"
    assert "anthropic-version" in afake.headers[0]
    assert "sk-ant-test" in (afake.headers[0].get("x-api-key") or afake.headers[0]["authorization"])


def test_anthropic_stream_events(afake: FakeAnthropic, aclient: anthropic.Anthropic) -> None:
    events = list(_message_events(aclient))
    types = [e.type for e in events]
    deltas = types.count("content_block_delta")
    assert deltas > 2
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,  # the client drops the ping
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert start.message.usage.output_tokens == 1
    assert start.message.usage.input_tokens > 0
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens > 1
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == "It is sunny in Paris today."
    raw = [e["type"] for e in afake.events({"messages": MESSAGES})]
    assert raw[:3] == ["message_start", "content_block_start", "ping"]


def test_anthropic_stream_helper(afake: FakeAnthropic, aclient: anthropic.Anthropic) -> None:
    afake.cache_read_input_tokens, afake.cache_creation_input_tokens = 900, 100
    with aclient.messages.stream(model=CLAUDE, max_tokens=256, messages=MESSAGES) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 2
    assert "".join(pieces) == "It is sunny in Paris today."
    assert final.content[0].text == "It is sunny in Paris today."  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 1
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (900, 100)
    assert afake.requests[0]["stream"] is True


def test_anthropic_tool_use(afake: FakeAnthropic, aclient: anthropic.Anthropic) -> None:
    afake.reply = "Let me check."
    afake.tool_uses = [WEATHER_USE]
    message = _message(aclient)
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    use = message.content[1]
    assert (use.id, use.name, use.input) == ("toolu_01", "get_weather", {"city": "Paris", "days": [1, 2]})  # type: ignore[union-attr]
    events = list(_message_events(aclient))
    partial = [
        e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(partial) > 2
    assert json.loads("".join(partial)) == WEATHER_USE["input"]
    with aclient.messages.stream(model=CLAUDE, max_tokens=256, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert final.content[1].input == WEATHER_USE["input"]  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


def test_anthropic_refusal_and_stop_reason(afake: FakeAnthropic, aclient: anthropic.Anthropic) -> None:
    afake.refusal = True
    afake.reply = ""
    message = _message(aclient)
    assert message.stop_reason == "refusal"
    assert message.content == []
    assert message.stop_details is not None
    with aclient.messages.stream(model=CLAUDE, max_tokens=256, messages=MESSAGES) as stream:
        assert list(stream.text_stream) == []
        assert stream.get_final_message().stop_reason == "refusal"
    afake.refusal = False
    afake.reply = "A long answer"
    afake.stop_reason = "max_tokens"
    assert _message(aclient).stop_reason == "max_tokens"
    afake.input_tokens, afake.output_tokens = 1234, 56
    usage = _message(aclient).usage
    assert (usage.input_tokens, usage.output_tokens) == (1234, 56)


def test_anthropic_count_tokens(aclient: anthropic.Anthropic) -> None:
    assert aclient.messages.count_tokens(model=CLAUDE, messages=MESSAGES).input_tokens > 0


async def test_async_anthropic(afake: FakeAnthropic) -> None:
    afake.tool_uses = [WEATHER_USE]
    async with anthropic.AsyncAnthropic(base_url=afake.base_url, api_key="sk-ant-test", max_retries=0) as client:
        message = await client.messages.create(model=CLAUDE, max_tokens=256, messages=MESSAGES)
        assert message.stop_reason == "tool_use"
        stream = await client.messages.create(model=CLAUDE, max_tokens=256, messages=MESSAGES, stream=True)
        types = [e.type async for e in stream]
        assert (types[0], types[-1]) == ("message_start", "message_stop")
        async with client.messages.stream(model=CLAUDE, max_tokens=256, messages=MESSAGES) as helper:
            text = "".join([t async for t in helper.text_stream])
            final = await helper.get_final_message()
        assert text == "It is sunny in Paris today."
        assert final.content[1].input == WEATHER_USE["input"]  # type: ignore[union-attr]
        afake.fail_next(529)
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model=CLAUDE, max_tokens=256, messages=MESSAGES)


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_error_statuses(
    afake: FakeAnthropic,
    aclient: anthropic.Anthropic,
    status: int,
    error: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    afake.fail_next(status, retry_after=3, message="scripted failure")
    with pytest.raises(error) as caught:
        _message(aclient)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"] == {"type": error_type, "message": "scripted failure"}
    assert caught.value.response.headers["retry-after"] == "3"
    assert _message(aclient).stop_reason == "end_turn"


def test_anthropic_retry_honours_retry_after(afake: FakeAnthropic) -> None:
    afake.fail_next(429, retry_after=0.1)
    with anthropic.Anthropic(base_url=afake.base_url, api_key="sk-ant-test", max_retries=1) as client:
        assert _message(client).stop_reason == "end_turn"
    assert len(afake.requests) == 2
    assert 0.09 <= afake.times[1] - afake.times[0] < 0.37


def test_anthropic_timeout_and_unknown_path(afake: FakeAnthropic, aclient: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        aclient.models.list()
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    afake.delay = 1
    with pytest.raises(anthropic.APITimeoutError):
        _message(aclient, timeout=0.2)


def test_anthropic_broken_and_failed_streams(afake: FakeAnthropic, aclient: anthropic.Anthropic) -> None:
    afake.stream_error_after = 3
    received: list[Any] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        received.extend(_message_events(aclient))
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert len(received) == 2  # the third event was the (skipped) ping
    afake.stream_error_after = None
    afake.break_stream_after = 3
    # anthropic 2.14 lets the transport error through unwrapped mid-stream
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        list(_message_events(aclient))


# --- the payloads against the clients' models, strictly ---------------------------------------------------------


@pytest.mark.parametrize("variant", ["text", "refusal", "tools", "length"])
def test_openai_payloads_validate(variant: str) -> None:
    fake = FakeOpenAI(reply="hello there, world")
    fake.server.server_close()  # only the payload builders are used
    fake.cached_tokens, fake.reasoning_tokens = 5, 7
    if variant == "refusal":
        fake.refusal = "no"
    elif variant == "tools":
        fake.tool_calls = [WEATHER_CALL, TIME_CALL]
    elif variant == "length":
        fake.finish_reason = "length"
    body: dict[str, Any] = {
        "messages": MESSAGES,
        "input": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
    }
    ChatCompletion.model_validate(fake.completion(body))
    for chunk in fake.chunks(body):
        ChatCompletionChunk.model_validate(chunk)
    Response.model_validate(fake.response(body))
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
    for event in fake.response_events(body):
        assert adapter.validate_python(event).type == event["type"]
    for encoding in ("float", "base64"):
        embeddings = fake.embeddings({"model": "m", "input": ["a", "b"], "encoding_format": encoding})
        if encoding == "float":
            CreateEmbeddingResponse.model_validate(embeddings)
        else:
            assert all(isinstance(d["embedding"], str) for d in embeddings["data"])


@pytest.mark.parametrize("variant", ["text", "refusal", "tools"])
def test_anthropic_payloads_validate(variant: str) -> None:
    fake = FakeAnthropic()
    fake.server.server_close()
    fake.cache_read_input_tokens = 3
    if variant == "refusal":
        fake.refusal = True
    elif variant == "tools":
        fake.tool_uses = [WEATHER_USE, {"id": "toolu_02", "name": "noop", "input": {}}]
    body = {"messages": MESSAGES, "system": "be brief"}
    Message.model_validate(fake.message(body))
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
    for event in fake.events(body):
        if event["type"] != "ping":  # not among the client's event models: the client skips it
            assert adapter.validate_python(event).type == event["type"]
