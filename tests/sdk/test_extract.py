"""Reading model responses: real openai/anthropic objects, their dict forms, and streams.

Non-streamed fixtures are validated with the libraries' own models (so a fixture that
drifts from the real schema fails loudly); streams go through the real clients over an
in-process transport, so the chunk and event objects are exactly what an app iterates.
The suite's conftest fails any test in which the module's last-resort guard swallowed an
error: odd input must be handled by design, not by a caught exception.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from unittest import mock

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import Message
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionMessage
from openai.types.responses import Response

from llmpulse._extract import Extracted, extract_response
from llmpulse._messages import input_messages, output_messages, request_model
from llmpulse._stats import stats
from llmpulse._stream import extract_stream

# -- harness --------------------------------------------------------------------------------


FORMS = ["object", "model_dump", "json_dump", "raw"]


def as_form(model_cls: Any, payload: dict[str, Any], form: str) -> object:
    """The payload as the validated library object, its dumps, or the raw API JSON."""
    obj = model_cls.model_validate(payload)
    if form == "object":
        return obj
    if form == "model_dump":
        return obj.model_dump()
    if form == "json_dump":
        return obj.model_dump(mode="json")
    return json.loads(json.dumps(payload))


def sse(events: list[dict[str, Any]], *, named: bool, done: bool = False) -> bytes:
    out = []
    for ev in events:
        head = f"event: {ev['type']}\n" if named else ""
        out.append(f"{head}data: {json.dumps(ev)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def _http(body: bytes) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def openai_client(body: bytes) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://llmpulse.test/v1",
        http_client=_http(body),
        max_retries=0,
    )


def anthropic_client(body: bytes) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="http://llmpulse.test",
        http_client=_http(body),
        max_retries=0,
    )


def stream_forms(chunks: list[Any]) -> list[list[object]]:
    """The same stream as library objects, model_dump dicts and JSON-mode dicts."""
    return [
        chunks,
        [c.model_dump() for c in chunks],
        [c.model_dump(mode="json") for c in chunks],
    ]


# -- OpenAI Chat Completions ----------------------------------------------------------------


def chat_payload(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": choices,
    }
    if usage is not None:
        payload["usage"] = usage
    return payload


def choice(message: dict[str, Any], finish: str = "stop", index: int = 0) -> dict[str, Any]:
    return {
        "index": index,
        "finish_reason": finish,
        "logprobs": None,
        "message": {"role": "assistant", **message},
    }


FULL_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 100, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0},
}


@pytest.mark.parametrize("form", FORMS)
def test_chat_completion_text_and_usage(form: str) -> None:
    payload = chat_payload([choice({"content": "Hello there.", "refusal": None})], FULL_USAGE)
    assert extract_response(as_form(ChatCompletion, payload, form)) == Extracted(
        response_model="gpt-4o-2024-08-06",
        response_id="chatcmpl-abc",
        input_tokens=1200,  # OpenAI's prompt_tokens already include the cached ones
        output_tokens=300,
        cache_read_tokens=1024,
        cache_write_tokens=100,
        reasoning_tokens=256,
        finish_reasons=["stop"],
        output_text="Hello there.",
    )


@pytest.mark.parametrize("form", FORMS)
def test_chat_completion_tool_calls(form: str) -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "C"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "broken", "arguments": '{"city": "Par'},
        },  # not valid JSON
        {"id": "call_3", "type": "custom", "custom": {"name": "python", "input": '{"a": 1}'}},
    ]
    payload = chat_payload(
        [choice({"content": None, "tool_calls": calls}, finish="tool_calls")],
        {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    )
    ex = extract_response(as_form(ChatCompletion, payload, form))
    assert ex == Extracted(
        response_model="gpt-4o-2024-08-06",
        response_id="chatcmpl-abc",
        input_tokens=50,
        output_tokens=20,
        finish_reasons=["tool_calls"],
        tool_calls=[
            {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}},
            {"id": "call_2", "name": "broken", "arguments": '{"city": "Par'},
            # A custom tool takes free text: kept as given even when it looks like JSON.
            {"id": "call_3", "name": "python", "arguments": '{"a": 1}'},
        ],
    )


@pytest.mark.parametrize("form", FORMS)
def test_chat_completion_refusal(form: str) -> None:
    payload = chat_payload([choice({"content": None, "refusal": "I can't help with that."})])
    assert extract_response(as_form(ChatCompletion, payload, form)) == Extracted(
        response_model="gpt-4o-2024-08-06",
        response_id="chatcmpl-abc",
        finish_reasons=["stop"],
        refusal=True,
        refusal_text="I can't help with that.",
    )


@pytest.mark.parametrize("form", FORMS)
def test_chat_completion_content_filter(form: str) -> None:
    payload = chat_payload([choice({"content": "Here is how to"}, finish="content_filter")])
    ex = extract_response(as_form(ChatCompletion, payload, form))
    assert ex.refusal is True
    assert ex.refusal_category == "content_filter"
    assert ex.refusal_text is None
    assert ex.finish_reasons == ["content_filter"]
    assert ex.output_text == "Here is how to"


@pytest.mark.parametrize("form", FORMS)
def test_chat_completion_several_choices(form: str) -> None:
    payload = chat_payload(
        [
            choice({"content": "first"}, finish="stop", index=0),
            choice({"content": "second", "refusal": "no"}, finish="content_filter", index=1),
        ]
    )
    ex = extract_response(as_form(ChatCompletion, payload, form))
    assert ex.finish_reasons == ["stop", "content_filter"]
    assert ex.output_text == "first"
    # Any choice stopped by the filter is a provider refusal; the text comes from choice 0.
    assert (ex.refusal, ex.refusal_category, ex.refusal_text) == (True, "content_filter", None)


def test_chat_message_in_a_list_of_parts() -> None:
    # Some OpenAI-compatible servers answer with content parts instead of a string.
    payload = chat_payload([choice({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})])
    assert extract_response(payload).output_text == "ab"


@pytest.mark.parametrize("form", FORMS)
def test_embeddings(form: str) -> None:
    payload = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    assert extract_response(as_form(CreateEmbeddingResponse, payload, form)) == Extracted(
        response_model="text-embedding-3-small", input_tokens=8
    )


@pytest.mark.parametrize("form", FORMS)
def test_legacy_completion(form: str) -> None:
    payload = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "text": "done", "finish_reason": "length", "logprobs": None}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 16, "total_tokens": 19},
    }
    assert extract_response(as_form(Completion, payload, form)) == Extracted(
        response_model="gpt-3.5-turbo-instruct",
        response_id="cmpl-1",
        input_tokens=3,
        output_tokens=16,
        finish_reasons=["length"],
        output_text="done",
    )


# -- OpenAI Responses -----------------------------------------------------------------------


def response_payload(
    output: list[dict[str, Any]],
    *,
    status: str = "completed",
    incomplete: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": "resp_123",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": "gpt-5-2025-08-07",
        "status": status,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def message_item(*content: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": list(content),
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


RESPONSES_USAGE = {
    "input_tokens": 2000,
    "input_tokens_details": {"cached_tokens": 1500, "cache_write_tokens": 200},
    "output_tokens": 400,
    "output_tokens_details": {"reasoning_tokens": 320},
    "total_tokens": 2400,
}
REASONING_ITEM = {"type": "reasoning", "id": "rs_1", "summary": []}


@pytest.mark.parametrize("form", FORMS)
def test_responses_text_and_usage(form: str) -> None:
    payload = response_payload(
        [REASONING_ITEM, message_item(output_text("Hello "), output_text("world."))],
        usage=RESPONSES_USAGE,
    )
    assert extract_response(as_form(Response, payload, form)) == Extracted(
        response_model="gpt-5-2025-08-07",
        response_id="resp_123",
        input_tokens=2000,  # already includes the cached tokens
        output_tokens=400,
        cache_read_tokens=1500,
        cache_write_tokens=200,
        reasoning_tokens=320,
        finish_reasons=["stop"],
        output_text="Hello world.",
    )


def test_responses_text_matches_the_library_property() -> None:
    obj = Response.model_validate(
        response_payload([message_item(output_text("a"), output_text("b")), message_item(output_text("c"))])
    )
    assert extract_response(obj).output_text == obj.output_text == "abc"


@pytest.mark.parametrize("form", FORMS)
def test_responses_function_call(form: str) -> None:
    payload = response_payload(
        [
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_9",
                "name": "lookup",
                "arguments": '{"q": "llm"}',
                "status": "completed",
            },
        ]
    )
    ex = extract_response(as_form(Response, payload, form))
    assert ex.tool_calls == [{"id": "call_9", "name": "lookup", "arguments": {"q": "llm"}}]
    assert ex.finish_reasons == ["tool_calls"]
    assert ex.output_text == ""


@pytest.mark.parametrize("form", FORMS)
def test_responses_refusal(form: str) -> None:
    payload = response_payload([message_item({"type": "refusal", "refusal": "I can't do that."})])
    assert extract_response(as_form(Response, payload, form)) == Extracted(
        response_model="gpt-5-2025-08-07",
        response_id="resp_123",
        finish_reasons=["stop"],
        refusal=True,
        refusal_text="I can't do that.",
    )


@pytest.mark.parametrize(
    ("status", "incomplete", "reasons"),
    [
        ("incomplete", "max_output_tokens", ["length"]),
        ("incomplete", "content_filter", ["content_filter"]),
        ("incomplete", "max_messages", ["max_messages"]),
        ("incomplete", None, ["incomplete"]),
        ("failed", None, ["error"]),
        ("cancelled", None, ["cancelled"]),
        ("in_progress", None, []),
        ("queued", None, []),
    ],
)
def test_responses_status_as_finish_reason(status: str, incomplete: str | None, reasons: list[str]) -> None:
    payload = response_payload([message_item(output_text("partial"))], status=status, incomplete=incomplete)
    for form in FORMS:
        ex = extract_response(as_form(Response, payload, form))
        assert ex.finish_reasons == reasons
        assert ex.refusal is (incomplete == "content_filter")
        assert ex.refusal_category == ("content_filter" if ex.refusal else None)


# -- Anthropic Messages ---------------------------------------------------------------------


def anthropic_payload(content: list[dict[str, Any]], stop: str | None = "end_turn", **usage: Any) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 25, **usage},
    }


@pytest.mark.parametrize("form", FORMS)
def test_anthropic_text_and_cache_normalisation(form: str) -> None:
    payload = anthropic_payload(
        [
            {"type": "thinking", "thinking": "let me think", "signature": "sig"},
            {"type": "text", "text": "Hello", "citations": None},
            {"type": "text", "text": ", world", "citations": None},
        ],
        cache_read_input_tokens=1000,
        cache_creation_input_tokens=200,
        output_tokens_details={"thinking_tokens": 12},
    )
    assert extract_response(as_form(Message, payload, form)) == Extracted(
        response_model="claude-sonnet-4-5-20250929",
        response_id="msg_01",
        input_tokens=1210,  # 10 uncached + 1000 read + 200 written (semconv: includes cache)
        output_tokens=25,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        reasoning_tokens=12,
        finish_reasons=["end_turn"],
        output_text="Hello, world",
    )


@pytest.mark.parametrize("form", FORMS)
def test_anthropic_without_cache_fields(form: str) -> None:
    ex = extract_response(as_form(Message, anthropic_payload([]), form))
    assert (ex.input_tokens, ex.cache_read_tokens, ex.cache_write_tokens) == (10, None, None)


@pytest.mark.parametrize("form", FORMS)
def test_anthropic_cache_zero_is_kept(form: str) -> None:
    payload = anthropic_payload([], cache_read_input_tokens=0, cache_creation_input_tokens=0)
    ex = extract_response(as_form(Message, payload, form))
    assert (ex.input_tokens, ex.cache_read_tokens, ex.cache_write_tokens) == (10, 0, 0)


@pytest.mark.parametrize("form", FORMS)
def test_anthropic_tool_use(form: str) -> None:
    payload = anthropic_payload(
        [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
        stop="tool_use",
    )
    ex = extract_response(as_form(Message, payload, form))
    assert ex.tool_calls == [{"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert ex.finish_reasons == ["tool_use"]
    assert ex.output_text == "Let me check."
    assert ex.refusal is False


@pytest.mark.parametrize("form", FORMS)
def test_anthropic_refusal_with_category(form: str) -> None:
    payload = anthropic_payload([], stop="refusal")
    payload["stop_details"] = {"type": "refusal", "category": "cyber", "explanation": "..."}
    ex = extract_response(as_form(Message, payload, form))
    assert (ex.refusal, ex.refusal_category, ex.refusal_text) == (True, "cyber", None)
    assert ex.finish_reasons == ["refusal"]


@pytest.mark.parametrize("form", FORMS)
def test_anthropic_refusal_without_details(form: str) -> None:
    ex = extract_response(as_form(Message, anthropic_payload([], stop="refusal"), form))
    assert (ex.refusal, ex.refusal_category) == (True, None)


@pytest.mark.parametrize("form", FORMS)
def test_anthropic_max_tokens_is_not_a_refusal(form: str) -> None:
    payload = anthropic_payload([{"type": "text", "text": "cut"}], stop="max_tokens")
    ex = extract_response(as_form(Message, payload, form))
    assert (ex.finish_reasons, ex.refusal) == (["max_tokens"], False)


# -- other return values --------------------------------------------------------------------


def test_plain_string() -> None:
    assert extract_response("just text") == Extracted(output_text="just text")


@pytest.mark.parametrize("value", [None, 0, 3.5, True, b"bytes", [], (), [1, 2], object()])
def test_non_responses_give_an_empty_record(value: object) -> None:
    assert extract_response(value) == Extracted()


# -- OpenAI chat streams --------------------------------------------------------------------


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    index: int = 0,
    usage: dict[str, Any] | None = None,
    model: str = "gpt-4o-mini-2024-07-18",
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }


def chat_stream(chunks: list[dict[str, Any]]) -> list[Any]:
    with openai_client(sse(chunks, named=False, done=True)) as client:
        return list(client.chat.completions.create(model="m", messages=[], stream=True))


TEXT_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo!"}),
    chunk({}, "stop"),
]
STREAM_USAGE = {
    "prompt_tokens": 40,
    "completion_tokens": 3,
    "total_tokens": 43,
    "prompt_tokens_details": {"cached_tokens": 32},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def test_chat_stream_with_usage() -> None:
    chunks = chat_stream([*TEXT_CHUNKS, chunk(None, usage=STREAM_USAGE)])
    assert type(chunks[0]).__name__ == "ChatCompletionChunk"
    for form in stream_forms(chunks):
        assert extract_stream(form) == Extracted(
            response_model="gpt-4o-mini-2024-07-18",
            response_id="chatcmpl-s1",
            input_tokens=40,
            output_tokens=3,
            cache_read_tokens=32,
            reasoning_tokens=0,
            finish_reasons=["stop"],
            output_text="Hello!",
        )


def test_chat_stream_without_usage() -> None:
    for form in stream_forms(chat_stream(TEXT_CHUNKS)):
        assert extract_stream(form) == Extracted(
            response_model="gpt-4o-mini-2024-07-18",
            response_id="chatcmpl-s1",
            finish_reasons=["stop"],
            output_text="Hello!",
        )


def test_chat_stream_tool_calls_split_across_chunks() -> None:
    def tc(i: int, **kw: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": i, **kw}]}

    chunks = chat_stream(
        [
            chunk({"role": "assistant", "content": None}),
            chunk(
                tc(
                    0,
                    id="call_a",
                    type="function",
                    function={"name": "get_weather", "arguments": ""},
                )
            ),
            chunk(tc(0, function={"arguments": '{"ci'})),
            chunk(
                tc(
                    1,
                    id="call_b",
                    type="function",
                    function={"name": "get_time", "arguments": '{"tz"'},
                )
            ),
            chunk(tc(0, function={"arguments": 'ty": "Paris"}'})),
            chunk(tc(1, function={"arguments": ': "UTC"}'})),
            chunk({}, "tool_calls"),
            chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}),
        ]
    )
    for form in stream_forms(chunks):
        ex = extract_stream(form)
        assert ex.tool_calls == [
            {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}},
            {"id": "call_b", "name": "get_time", "arguments": {"tz": "UTC"}},
        ]
        assert (ex.finish_reasons, ex.output_text) == (["tool_calls"], "")
        assert (ex.input_tokens, ex.output_tokens) == (5, 7)


def test_chat_stream_refusal() -> None:
    chunks = chat_stream(
        [
            chunk({"role": "assistant", "content": None, "refusal": ""}),
            chunk({"refusal": "I can't "}),
            chunk({"refusal": "help with that."}),
            chunk({}, "stop"),
        ]
    )
    for form in stream_forms(chunks):
        ex = extract_stream(form)
        assert (ex.refusal, ex.refusal_text, ex.refusal_category) == (
            True,
            "I can't help with that.",
            None,
        )
        assert ex.output_text == ""


def test_chat_stream_content_filter() -> None:
    chunks = chat_stream([chunk({"content": "Sure, first"}), chunk({}, "content_filter")])
    for form in stream_forms(chunks):
        ex = extract_stream(form)
        assert (ex.refusal, ex.refusal_category) == (True, "content_filter")
        assert ex.output_text == "Sure, first"


def test_chat_stream_several_choices_and_an_empty_first_chunk() -> None:
    # Azure sends a first chunk with no model and no choices (prompt filter results).
    first = {"id": "", "object": "", "created": 0, "model": "", "choices": []}
    chunks = chat_stream(
        [
            first,
            chunk({"content": "A"}, index=0),
            chunk({"content": "B"}, index=1),
            chunk({}, "length", index=1),
            chunk({}, "stop", index=0),
        ]
    )
    for form in stream_forms(chunks):
        ex = extract_stream(form)
        assert (ex.response_model, ex.response_id) == ("gpt-4o-mini-2024-07-18", "chatcmpl-s1")
        assert ex.output_text == "A"
        assert ex.finish_reasons == ["stop", "length"]  # in choice order


def test_chat_stream_helper_events() -> None:
    body = sse([*TEXT_CHUNKS, chunk(None, usage=STREAM_USAGE)], named=False, done=True)
    with (
        openai_client(body) as client,
        client.chat.completions.stream(model="m", messages=[]) as stream,
    ):
        events = list(stream)
    kinds = {e.type for e in events}
    assert {"chunk", "content.delta", "content.done"} <= kinds
    expected = extract_stream(chat_stream([*TEXT_CHUNKS, chunk(None, usage=STREAM_USAGE)]))
    for form in stream_forms(events):
        assert extract_stream(form) == expected
    # Without the chunk events the content deltas still give the text.
    assert extract_stream([e for e in events if e.type == "content.delta"]).output_text == "Hello!"


# -- OpenAI Responses streams ---------------------------------------------------------------


def responses_stream(events: list[dict[str, Any]]) -> list[Any]:
    for n, ev in enumerate(events):
        ev.setdefault("sequence_number", n)
    with openai_client(sse(events, named=True)) as client:
        return list(client.responses.create(model="m", input="hi", stream=True))


def text_delta(text: str) -> dict[str, Any]:
    return {
        "type": "response.output_text.delta",
        "item_id": "msg_1",
        "output_index": 1,
        "content_index": 0,
        "delta": text,
        "logprobs": [],
    }


def responses_events(final: dict[str, Any] | None, *deltas: dict[str, Any]) -> list[dict[str, Any]]:
    events = [
        {"type": "response.created", "response": response_payload([], status="in_progress")},
        {"type": "response.in_progress", "response": response_payload([], status="in_progress")},
        *deltas,
    ]
    if final is not None:
        events.append({"type": f"response.{final['status']}", "response": final})
    return events


def test_responses_stream_uses_the_final_response() -> None:
    final = response_payload([REASONING_ITEM, message_item(output_text("Hello world."))], usage=RESPONSES_USAGE)
    events = responses_stream(responses_events(final, text_delta("Hello "), text_delta("world.")))
    assert type(events[-1]).__name__ == "ResponseCompletedEvent"
    for form in stream_forms(events):
        assert extract_stream(form) == extract_response(Response.model_validate(final))


def test_responses_stream_keeps_streamed_text_when_the_final_has_none() -> None:
    final = response_payload([], usage=RESPONSES_USAGE)
    events = responses_stream(responses_events(final, text_delta("Hi"), text_delta("!")))
    for form in stream_forms(events):
        ex = extract_stream(form)
        assert (ex.output_text, ex.input_tokens, ex.finish_reasons) == ("Hi!", 2000, ["stop"])


def test_responses_stream_cut_short() -> None:
    events = responses_stream(responses_events(None, text_delta("Hel"), text_delta("lo")))
    for form in stream_forms(events):
        assert extract_stream(form) == Extracted(
            response_model="gpt-5-2025-08-07", response_id="resp_123", output_text="Hello"
        )


def test_responses_stream_incomplete() -> None:
    final = response_payload(
        [message_item(output_text("Hel"))],
        status="incomplete",
        incomplete="max_output_tokens",
        usage=RESPONSES_USAGE,
    )
    events = responses_stream(responses_events(final, text_delta("Hel")))
    for form in stream_forms(events):
        ex = extract_stream(form)
        assert (ex.finish_reasons, ex.output_tokens, ex.output_text) == (["length"], 400, "Hel")


def test_responses_stream_refusal() -> None:
    final = response_payload([message_item({"type": "refusal", "refusal": "No can do."})])
    refusal = [
        {
            "type": "response.refusal.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": d,
        }
        for d in ("No ", "can do.")
    ]
    events = responses_stream(responses_events(final, *refusal))
    for form in stream_forms(events):
        ex = extract_stream(form)
        assert (ex.refusal, ex.refusal_text, ex.output_text) == (True, "No can do.", "")
        # Without the final response the deltas alone say the same.
        ex = extract_stream(form[:-1])
        assert (ex.refusal, ex.refusal_text) == (True, "No can do.")


def test_responses_stream_function_call_without_final() -> None:
    item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_7",
        "name": "lookup",
        "arguments": "",
        "status": "in_progress",
    }
    args = [
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 0,
            "delta": d,
        }
        for d in ('{"q": ', '"llm"}')
    ]
    added = {"type": "response.output_item.added", "output_index": 0, "item": item}
    events = responses_stream(responses_events(None, added, *args))
    for form in stream_forms(events):
        assert extract_stream(form).tool_calls == [{"id": "call_7", "name": "lookup", "arguments": {"q": "llm"}}]
    done = {
        "type": "response.output_item.done",
        "output_index": 0,
        "item": {**item, "arguments": '{"q": "final"}', "status": "completed"},
    }
    events = responses_stream(responses_events(None, added, *args, done))
    for form in stream_forms(events):
        assert extract_stream(form).tool_calls == [{"id": "call_7", "name": "lookup", "arguments": {"q": "final"}}]


# -- Anthropic streams ----------------------------------------------------------------------


def anthropic_events(
    stop: str = "end_turn",
    *,
    blocks: list[list[dict[str, Any]]] | None = None,
    delta_usage: dict[str, Any] | None = None,
    stop_details: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A raw Anthropic event stream: each block is [start, delta...]."""
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_s1",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5-20251001",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 12,
                    "output_tokens": 1,
                    "cache_read_input_tokens": 1000,
                    "cache_creation_input_tokens": 200,
                },
            },
        },
        {"type": "ping"},
    ]
    for i, block in enumerate(blocks or []):
        start, *deltas = block
        events.append({"type": "content_block_start", "index": i, "content_block": start})
        events.extend({"type": "content_block_delta", "index": i, "delta": d} for d in deltas)
        events.append({"type": "content_block_stop", "index": i})
    delta: dict[str, Any] = {"stop_reason": stop, "stop_sequence": None}
    if stop_details is not None:
        delta["stop_details"] = stop_details
    events.append(
        {
            "type": "message_delta",
            "delta": delta,
            "usage": {"output_tokens": 42, **(delta_usage or {})},
        }
    )
    events.append({"type": "message_stop"})
    return events


TEXT_BLOCK = [
    {"type": "text", "text": ""},
    {"type": "text_delta", "text": "Hello"},
    {"type": "text_delta", "text": ", world"},
]
THINKING_BLOCK = [
    {"type": "thinking", "thinking": "", "signature": ""},
    {"type": "thinking_delta", "thinking": "hmm"},
    {"type": "signature_delta", "signature": "sig"},
]
TOOL_BLOCK = [
    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    {"type": "input_json_delta", "partial_json": ""},
    {"type": "input_json_delta", "partial_json": '{"city": '},
    {"type": "input_json_delta", "partial_json": '"Paris"}'},
]
EMPTY_TOOL_BLOCK = [{"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}]


def anthropic_raw(events: list[dict[str, Any]]) -> list[Any]:
    with anthropic_client(sse(events, named=True)) as client:
        return list(client.messages.create(model="m", max_tokens=10, messages=[], stream=True))


def anthropic_helper(events: list[dict[str, Any]]) -> list[Any]:
    with (
        anthropic_client(sse(events, named=True)) as client,
        client.messages.stream(model="m", max_tokens=10, messages=[]) as stream,
    ):
        return list(stream)


ANTHROPIC_STREAM_EXPECTED = Extracted(
    response_model="claude-haiku-4-5-20251001",
    response_id="msg_s1",
    input_tokens=1212,  # 12 + 1000 cache read + 200 cache write
    output_tokens=42,  # cumulative: the message_delta's, not message_start's 1
    cache_read_tokens=1000,
    cache_write_tokens=200,
    finish_reasons=["tool_use"],
    output_text="Hello, world",
    tool_calls=[
        {"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "toolu_2", "name": "now", "arguments": {}},
    ],
)


def test_anthropic_raw_stream() -> None:
    events = anthropic_events("tool_use", blocks=[THINKING_BLOCK, TEXT_BLOCK, TOOL_BLOCK, EMPTY_TOOL_BLOCK])
    chunks = anthropic_raw(events)
    assert type(chunks[0]).__name__ == "RawMessageStartEvent"
    for form in stream_forms(chunks):
        assert extract_stream(form) == ANTHROPIC_STREAM_EXPECTED


def test_anthropic_helper_stream_counts_text_once() -> None:
    events = anthropic_events("tool_use", blocks=[THINKING_BLOCK, TEXT_BLOCK, TOOL_BLOCK, EMPTY_TOOL_BLOCK])
    chunks = anthropic_helper(events)
    kinds = [c.type for c in chunks]
    assert "text" in kinds  # TextEvents repeat every text_delta
    assert "input_json" in kinds
    assert type(chunks[-1]).__name__ == "ParsedMessageStopEvent"
    for form in stream_forms(chunks):
        assert extract_stream(form) == ANTHROPIC_STREAM_EXPECTED
    # An app that yields only the text events still gets the text.
    assert extract_stream([c for c in chunks if c.type == "text"]).output_text == "Hello, world"


def test_anthropic_stream_cumulative_usage_in_message_delta() -> None:
    events = anthropic_events(
        blocks=[TEXT_BLOCK],
        delta_usage={
            "input_tokens": 20,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 0,
        },
    )
    for chunks in (anthropic_raw(events), anthropic_helper(events)):
        for form in stream_forms(chunks):
            ex = extract_stream(form)
            assert (ex.input_tokens, ex.cache_read_tokens, ex.cache_write_tokens) == (2020, 2000, 0)
            assert ex.output_tokens == 42


def test_anthropic_stream_refusal() -> None:
    events = anthropic_events(
        "refusal",
        blocks=[TEXT_BLOCK],
        stop_details={"type": "refusal", "category": "bio", "explanation": None},
    )
    for chunks in (anthropic_raw(events), anthropic_helper(events)):
        for form in stream_forms(chunks):
            ex = extract_stream(form)
            assert (ex.refusal, ex.refusal_category, ex.finish_reasons) == (
                True,
                "bio",
                ["refusal"],
            )


def test_anthropic_stream_cut_short() -> None:
    events = anthropic_events(blocks=[TEXT_BLOCK, TOOL_BLOCK])[:-4]  # no tool end, no delta
    for form in stream_forms(anthropic_raw(events)):
        ex = extract_stream(form)
        assert ex.output_text == "Hello, world"
        assert ex.tool_calls == [
            {"id": "toolu_1", "name": "get_weather", "arguments": '{"city": '}  # partial JSON
        ]
        assert (ex.output_tokens, ex.finish_reasons, ex.input_tokens) == (1, [], 1212)


# -- plain and mixed streams ----------------------------------------------------------------


def test_string_chunks() -> None:
    assert extract_stream(["Hel", "lo", "", " there"]) == Extracted(output_text="Hello there")


def test_empty_stream() -> None:
    assert extract_stream([]) == Extracted()
    assert extract_stream(()) == Extracted()


# -- input messages -------------------------------------------------------------------------

PNG = (  # a 1x1 PNG, base64
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def test_openai_chat_messages() -> None:
    previous = ChatCompletionMessage.model_validate(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        }
    )
    kwargs = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "No emojis."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                ],
            },
            previous,  # a message object from an earlier response, passed back as history
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
            {"role": "assistant", "content": "It is 18°C."},
        ],
    }
    got = input_messages((), kwargs)
    assert got == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "system", "parts": [{"type": "text", "content": "No emojis."}]},
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is in this image?"},
                {"type": "image"},
                {"type": "audio"},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18°C"}],
        },
        {"role": "assistant", "parts": [{"type": "text", "content": "It is 18°C."}]},
    ]
    assert PNG not in json.dumps(got)


def test_anthropic_messages_with_system() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}, image]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "call the tool", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "18°C"}],
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "ok"},
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]
    tail = [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}, {"type": "image"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "call the tool"},
                {"type": "text", "content": "Checking."},
                {
                    "type": "tool_call",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "tool",
            "parts": [
                {"type": "tool_call_response", "id": "toolu_1", "response": "18°C"},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"type": "tool_call_response", "id": "toolu_2", "response": "ok"},
                {"type": "text", "content": "Thanks"},
            ],
        },
    ]
    system = {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]}
    assert input_messages((), {"system": "You are terse.", "messages": messages}) == [system, *tail]
    blocks = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    assert input_messages((), {"system": blocks, "messages": messages}) == [system, *tail]
    assert input_messages((), {"messages": messages}) == tail
    assert PNG not in json.dumps(tail)


def test_responses_input() -> None:
    system = {"role": "system", "parts": [{"type": "text", "content": "Be kind."}]}
    user = {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}
    assert input_messages((), {"instructions": "Be kind.", "input": "Hi"}) == [system, user]
    assert input_messages((), {"input": "Hi"}) == [user]
    assert input_messages((), {"instructions": "Be kind."}) == [system]
    items = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look:"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
            ],
        },
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"x": 1}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "done"},
        {"type": "reasoning", "id": "rs_1", "summary": []},  # not a message: skipped
    ]
    assert input_messages((), {"instructions": "Be kind.", "input": items}) == [
        system,
        {"role": "user", "parts": [{"type": "text", "content": "Look:"}, {"type": "image"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "f", "arguments": {"x": 1}}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "done"}],
        },
    ]


def test_prompt_and_positional_inputs() -> None:
    user = [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
    assert input_messages((), {"prompt": "Hi"}) == user
    assert input_messages(("Hi",), {}) == user
    assert input_messages(([{"role": "user", "content": "Hi"}],), {"temperature": 0}) == user
    # First match wins: messages= over a positional argument.
    assert input_messages(("ignored",), {"messages": [{"role": "user", "content": "Hi"}]}) == user
    # On a decorated method the first positional argument is self.
    assert input_messages((object(), "Hi"), {}) == user
    assert input_messages((object(), object(), "Hi"), {}) is None
    # A messages= that is not a list does not count; the next source is tried.
    assert input_messages(("Hi",), {"messages": "nope"}) == user


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((42,), {"temperature": 0.2}),
        ((None,), {"messages": None}),
        ((), {"prompt": 5}),
        ((), {"messages": []}),
        (({"role": "user"},), {}),
    ],
)
def test_unrecognisable_input(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    assert input_messages(args, kwargs) is None


def test_request_model() -> None:
    assert request_model({"model": "gpt-4o"}) == "gpt-4o"
    assert request_model({"model": 4}) is None
    assert request_model({"model": ""}) is None
    assert request_model({}) is None


# -- output messages ------------------------------------------------------------------------


def test_output_messages() -> None:
    ex = Extracted(
        output_text="Checking.",
        tool_calls=[{"id": "t1", "name": "f", "arguments": {"a": 1}}],
        finish_reasons=["tool_calls", "stop"],
    )
    assert output_messages(ex) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Checking."},
                {"type": "tool_call", "id": "t1", "name": "f", "arguments": {"a": 1}},
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert output_messages(Extracted(output_text="hi")) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hi"}], "finish_reason": "stop"}
    ]
    assert output_messages(Extracted(refusal=True, refusal_text="No.")) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "No."}],
            "finish_reason": "stop",
        }
    ]
    assert output_messages(Extracted(finish_reasons=["length"])) == [
        {"role": "assistant", "parts": [], "finish_reason": "length"}
    ]
    assert output_messages(Extracted()) == []


def test_output_messages_of_a_real_response() -> None:
    payload = anthropic_payload(
        [
            {"type": "text", "text": "On it."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        stop="tool_use",
    )
    assert output_messages(extract_response(Message.model_validate(payload))) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "On it."},
                {
                    "type": "tool_call",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "arguments": {"city": "Oslo"},
                },
            ],
            "finish_reason": "tool_use",
        }
    ]


# -- garbage never raises -------------------------------------------------------------------


class Exploding:
    """Every attribute access raises something other than AttributeError."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"no {name} for you")


class RaisingProperties:
    @property
    def id(self) -> str:
        raise ValueError("id")

    @property
    def model(self) -> str:
        return "gpt-4o"

    @property
    def choices(self) -> list[object]:
        raise KeyError("choices")

    @property
    def usage(self) -> object:
        raise TypeError("usage")


class BadMapping(Mapping[str, object]):
    def __getitem__(self, key: str) -> object:
        raise RuntimeError("no")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("no")

    def __len__(self) -> int:
        return 1

    def get(self, key: str, default: object = None) -> object:
        raise RuntimeError("no")


GARBAGE: list[object] = [
    Exploding(),
    RaisingProperties(),
    BadMapping(),
    mock.MagicMock(),
    mock.Mock(spec=[]),
    {"choices": "nope"},
    {"choices": [None, 1, "x", []]},
    {"choices": [{"message": "a str"}, {"finish_reason": 5}]},
    {
        "choices": [
            {
                "message": {"content": 5, "refusal": 7, "tool_calls": "x", "function_call": 3},
                "finish_reason": ["stop"],
            }
        ]
    },
    {
        "choices": [
            {
                "message": {
                    "tool_calls": [
                        None,
                        1,
                        {"function": None},
                        {"function": 5},
                        {"function": {"name": 1, "arguments": None}},
                    ]
                }
            }
        ]
    },
    {"usage": "x"},
    {
        "usage": {
            "prompt_tokens": "10",
            "completion_tokens": -1,
            "prompt_tokens_details": 5,
            "completion_tokens_details": {"reasoning_tokens": 1.5},
        }
    },
    {"usage": {"input_tokens": True, "output_tokens": None, "cache_read_input_tokens": "3"}},
    {"usage": {"input_tokens": 5, "input_tokens_details": [], "output_tokens_details": "x"}},
    {
        "output": [
            None,
            3,
            {"type": "message", "content": None},
            {"type": "message", "content": [None, {"type": "refusal", "refusal": 5}]},
            {"type": "function_call", "arguments": 5, "name": None},
        ],
        "status": 7,
        "incomplete_details": "x",
    },
    {"output": [], "status": "incomplete", "incomplete_details": {"reason": 9}},
    {
        "content": [None, {"type": "text", "text": None}, {"type": "tool_use", "input": "{bad"}],
        "stop_reason": 3,
        "stop_details": "x",
    },
    {"id": 5, "model": ["x"], "choices": None, "output": None, "content": None},
    ChatCompletion.model_construct(),
    Message.model_construct(),
    Response.model_construct(),
]


@pytest.mark.parametrize("value", GARBAGE, ids=lambda v: type(v).__name__)
def test_garbage_responses_never_raise(value: object) -> None:
    ex = extract_response(value)
    assert isinstance(ex, Extracted)
    output_messages(ex)


def test_garbage_gives_partial_records() -> None:
    ex = extract_response(RaisingProperties())
    assert ex == Extracted(response_model="gpt-4o")
    ex = extract_response({"choices": [{"message": {"content": 5, "refusal": 7}}]})
    assert ex == Extracted()
    ex = extract_response({"usage": {"prompt_tokens": "10", "completion_tokens": 4}})
    assert (ex.input_tokens, ex.output_tokens) == (None, 4)
    ex = extract_response({"content": [{"type": "tool_use", "input": "{bad"}], "stop_reason": 3})
    assert ex.tool_calls == [{"id": None, "name": None, "arguments": "{bad"}]
    assert ex.finish_reasons == []


def test_garbage_streams_never_raise() -> None:
    chunks: list[object] = [
        *GARBAGE,
        None,
        1,
        b"x",
        "text",
        {"type": 5},
        {"type": "content_block_delta", "delta": None},
        {
            "type": "content_block_delta",
            "index": "x",
            "delta": {"type": "input_json_delta", "partial_json": 5},
        },
        {"type": "content_block_start", "content_block": {"type": "tool_use", "id": 1}},
        {"type": "message_start", "message": "x"},
        {"type": "message_delta", "delta": {"stop_reason": 1}, "usage": {"output_tokens": "x"}},
        {"type": "message_stop", "message": 5},
        {"type": "response.completed", "response": 5},
        {"type": "response.output_text.delta", "delta": None},
        {"type": "response.output_item.added", "item": {"type": "function_call", "name": 3}},
        {"type": "response.function_call_arguments.delta", "output_index": None, "delta": "{"},
        {"type": "chunk", "chunk": None},
        {"type": "content.delta", "delta": 5},
        {"choices": [{"index": "0", "delta": {"tool_calls": [{"index": None, "function": "f"}]}}]},
        {"choices": [{"index": -1, "delta": "x", "finish_reason": 3}], "usage": 5},
    ]
    ex = extract_stream(chunks)
    assert ex.output_text == "text"
    output_messages(ex)


@pytest.mark.parametrize("value", [None, 5, "abc", b"abc", object(), iter(["a"]), {"a": 1}])
def test_non_sequence_streams_give_an_empty_record(value: Any) -> None:
    assert extract_stream(value) == Extracted()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((Exploding(),), {}),
        ((), BadMapping()),
        (
            (),
            {
                "messages": [
                    None,
                    5,
                    Exploding(),
                    {"role": 5},
                    {"role": "user", "content": 5},
                    {"role": "tool", "content": None},
                    {"role": "user", "content": [None, 5, {"type": 3}, {"type": "text"}]},
                    {"type": "function_call", "arguments": None},
                ],
                "system": 5,
            },
        ),
        ((), {"input": [None, {"role": "user", "content": Exploding()}], "instructions": 3}),
        ((mock.MagicMock(),), {"input": mock.MagicMock()}),
    ],
)
def test_garbage_inputs_never_raise(args: tuple[object, ...], kwargs: Any) -> None:
    got = input_messages(args, kwargs)
    assert got is None or isinstance(got, list)
    assert request_model(kwargs) is None


# -- the last-resort guard ------------------------------------------------------------------


class HostileEq(str):
    """A str subclass that passes type checks and then raises on comparison."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("hostile __eq__")

    __hash__ = str.__hash__


def test_guard_swallows_counts_and_logs(caplog: pytest.LogCaptureFixture, expect_sdk_errors: None) -> None:
    before = stats.get("extract_errors")
    hostile = {"id": "resp_1", "model": "gpt-5", "output": [{"type": HostileEq("message")}]}
    # What was read before the failure is kept.
    assert extract_response(hostile) == Extracted(response_model="gpt-5", response_id="resp_1")
    assert extract_stream(["a", {"type": HostileEq("x")}]) == Extracted()
    assert input_messages((), {"messages": [{"role": "user", "content": [{"type": HostileEq("text")}]}]}) is None
    assert stats.get("extract_errors") - before == 3
    assert sum("could not read" in r.getMessage() for r in caplog.records) == 3
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_the_module_never_imports_provider_libraries() -> None:
    import ast
    import inspect

    import llmpulse._extract

    tree = ast.parse(inspect.getsource(llmpulse._extract))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"openai", "anthropic", "pydantic"}
