"""Read a streamed model call (the chunks the user's generator yielded) into ``Extracted``.

OpenAI chat chunks, OpenAI Responses stream events and Anthropic raw stream events, as
library objects or dicts; see ``_extract`` for the field-access rules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ._extract import (
    Extracted,
    _apply_usage,
    _call,
    _fill_response,
    _finalize,
    _get,
    _guard_failed,
    _int,
    _list,
    _nstr,
    _parse_args,
    _str,
)

__all__ = ["extract_stream"]

log = logging.getLogger("llmpulse")

# -- streams --------------------------------------------------------------------------------


class _Call:
    """A tool call being assembled from stream fragments."""

    __slots__ = ("full", "id", "initial", "name", "parts")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.parts: list[str] = []  # argument fragments, in order
        self.initial: object = None  # arguments sent whole at the start (Anthropic ``input``)
        self.full: str | None = None  # arguments sent whole at the end (Responses ``done``)

    def as_dict(self) -> dict[str, object]:
        if self.full is not None:
            args = _parse_args(self.full)
        elif self.parts:
            args = _parse_args("".join(self.parts))
        else:
            args = _parse_args(self.initial)
        return _call(self.id, self.name, args)


class _Stream:
    """What the chunks of one stream add up to, before the final merge."""

    __slots__ = (
        "anthropic_usage",
        "calls",
        "category",
        "fallback_refusal",
        "fallback_text",
        "final",
        "finish",
        "id",
        "model",
        "refusal",
        "refused",
        "text",
        "usage",
    )

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.text: list[str] = []
        # Helper-library events that repeat what the raw events carry (Anthropic's
        # ``text``, openai's ``content.delta``): used only when no raw event had text.
        self.fallback_text: list[str] = []
        self.refusal: list[str] = []
        self.fallback_refusal: list[str] = []
        self.refused = False
        self.category: str | None = None
        self.calls: dict[tuple[str, int], _Call] = {}  # by (source, index), in arrival order
        self.finish: dict[int, str] = {}
        self.usage: object = None
        self.anthropic_usage: dict[str, object] = {}
        self.final: object = None  # a whole Response / Message when the stream carried one

    def ids(self, obj: object) -> None:
        if self.id is None:
            self.id = _nstr(_get(obj, "id"))
        if self.model is None:
            self.model = _nstr(_get(obj, "model"))

    def call(self, source: str, index: object) -> _Call:
        key = (source, index if type(index) is int else -1)
        entry = self.calls.get(key)
        if entry is None:
            entry = self.calls[key] = _Call()
        return entry


def extract_stream(chunks: Sequence[object]) -> Extracted:
    """Normalise the chunks a streaming call yielded, in order; never raises.

    Understands OpenAI ``ChatCompletionChunk``s (usage from the final chunk when the
    request set ``stream_options={"include_usage": True}``), OpenAI Responses stream
    events, Anthropic raw stream events and the helper events of ``messages.stream()``,
    their dict forms, and plain ``str`` chunks.
    """
    ex = Extracted()
    st = _Stream()
    try:
        if isinstance(chunks, (str, bytes)) or not isinstance(chunks, Sequence):
            return ex  # a caller's mistake, not a stream: never iterate what is not ours
        for chunk in chunks:
            if isinstance(chunk, str):
                st.text.append(chunk)
                continue
            if chunk is None or isinstance(chunk, (int, float, bytes)):
                continue
            kind = _get(chunk, "type")
            if not isinstance(kind, str):
                _chat_chunk(chunk, st)
            elif kind.startswith("response."):
                _responses_event(kind, chunk, st)
            elif kind == "chunk":  # openai's chat.completions.stream() wrapper event
                _chat_chunk(_get(chunk, "chunk"), st)
            elif kind == "content.delta":
                text = _str(_get(chunk, "delta"))
                if text:
                    st.fallback_text.append(text)
            elif kind == "refusal.delta":
                text = _str(_get(chunk, "delta"))
                if text:
                    st.fallback_refusal.append(text)
            else:
                _anthropic_event(kind, chunk, st)
        _merge_stream(st, ex)
    except Exception:
        _guard_failed("model stream")
    return ex


def _chat_chunk(chunk: object, st: _Stream) -> None:
    choices = _get(chunk, "choices")
    if not isinstance(choices, (list, tuple)):
        return
    st.ids(chunk)
    for choice in choices:
        index = _int(_get(choice, "index")) or 0
        reason = _nstr(_get(choice, "finish_reason"))
        if reason:
            st.finish[index] = reason
        if index:
            continue
        delta = _get(choice, "delta")
        if delta is None:
            continue
        text = _str(_get(delta, "content"))
        if text:
            st.text.append(text)
        refusal = _str(_get(delta, "refusal"))
        if refusal:
            st.refused = True
            st.refusal.append(refusal)
        for tc in _list(_get(delta, "tool_calls")):
            _chat_tool_delta(st.call("chat", _get(tc, "index")), tc, _get(tc, "function"))
        fc = _get(delta, "function_call")  # deprecated single function call
        if fc is not None:
            _chat_tool_delta(st.call("chat_fn", 0), None, fc)
    usage = _get(chunk, "usage")
    if usage is not None:
        st.usage = usage


def _chat_tool_delta(entry: _Call, tc: object, fn: object) -> None:
    call_id = _nstr(_get(tc, "id"))
    if call_id:
        entry.id = call_id
    name = _nstr(_get(fn, "name"))
    if name:
        entry.name = name  # sent once by OpenAI, repeated whole by some compatibles
    args = _str(_get(fn, "arguments"))
    if args:
        entry.parts.append(args)


def _responses_event(kind: str, ev: object, st: _Stream) -> None:
    if kind == "response.output_text.delta":
        text = _str(_get(ev, "delta"))
        if text:
            st.text.append(text)
    elif kind == "response.refusal.delta":
        st.refused = True
        text = _str(_get(ev, "delta"))
        if text:
            st.refusal.append(text)
    elif kind == "response.function_call_arguments.delta":
        text = _str(_get(ev, "delta"))
        if text:
            st.call("responses", _get(ev, "output_index")).parts.append(text)
    elif kind in ("response.output_item.added", "response.output_item.done"):
        item = _get(ev, "item")
        if _get(item, "type") == "function_call":
            entry = st.call("responses", _get(ev, "output_index"))
            entry.id = _nstr(_get(item, "call_id")) or entry.id
            entry.name = _nstr(_get(item, "name")) or entry.name
            args = _nstr(_get(item, "arguments"))
            if args and kind == "response.output_item.done":
                entry.full = args
    elif kind in ("response.completed", "response.incomplete", "response.failed"):
        response = _get(ev, "response")
        if response is not None:
            st.final = response
    elif kind in ("response.created", "response.in_progress"):
        st.ids(_get(ev, "response"))


_ANTHROPIC_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens_details",
)


def _anthropic_usage(st: _Stream, usage: object) -> None:
    # message_start carries the input side, message_delta cumulative counts: keep the
    # latest value of each field and normalise once at the end.
    if usage is None:
        return
    for key in _ANTHROPIC_USAGE_KEYS:
        value = _get(usage, key)
        if value is not None:
            st.anthropic_usage[key] = value


def _anthropic_event(kind: str, ev: object, st: _Stream) -> None:
    if kind == "content_block_delta":
        delta = _get(ev, "delta")
        dtype = _get(delta, "type")
        if dtype == "text_delta":
            text = _str(_get(delta, "text"))
            if text:
                st.text.append(text)
        elif dtype == "input_json_delta":
            text = _str(_get(delta, "partial_json"))
            if text:
                st.call("anthropic", _get(ev, "index")).parts.append(text)
    elif kind == "text":  # messages.stream() repeats each text_delta as a TextEvent
        text = _str(_get(ev, "text"))
        if text:
            st.fallback_text.append(text)
    elif kind == "content_block_start":
        block = _get(ev, "content_block")
        btype = _get(block, "type")
        if btype == "text":
            text = _str(_get(block, "text"))
            if text:
                st.text.append(text)
        elif btype == "tool_use":
            entry = st.call("anthropic", _get(ev, "index"))
            entry.id = _str(_get(block, "id"))
            entry.name = _str(_get(block, "name"))
            entry.initial = _get(block, "input")
    elif kind == "message_start":
        message = _get(ev, "message")
        st.ids(message)
        _anthropic_usage(st, _get(message, "usage"))
    elif kind == "message_delta":
        delta = _get(ev, "delta")
        stop = _nstr(_get(delta, "stop_reason"))
        if stop:
            st.finish[0] = stop
            if stop == "refusal":
                st.category = _nstr(_get(_get(delta, "stop_details"), "category"))
        _anthropic_usage(st, _get(ev, "usage"))
    elif kind == "message_stop":
        message = _get(ev, "message")  # present on messages.stream()'s MessageStopEvent
        if message is not None:
            st.final = message


def _merge_stream(st: _Stream, ex: Extracted) -> None:
    ex.response_id = st.id
    ex.response_model = st.model
    ex.output_text = "".join(st.text) or "".join(st.fallback_text)
    ex.tool_calls = [call.as_dict() for call in st.calls.values()]
    ex.finish_reasons = [st.finish[i] for i in sorted(st.finish)]
    refusal = "".join(st.refusal) or "".join(st.fallback_refusal)
    if refusal or st.refused:
        ex.refusal = True
        ex.refusal_text = refusal or None
    ex.refusal_category = st.category
    if st.anthropic_usage:
        _apply_usage(st.anthropic_usage, ex)
    if st.usage is not None:
        _apply_usage(st.usage, ex)
    _finalize(ex)
    if st.final is None:
        return
    # A stream that ends with the whole response (Responses' response.completed,
    # messages.stream()'s message_stop) is the most reliable source; streamed values
    # fill only what it lacks.
    fin = Extracted()
    _fill_response(st.final, fin)
    ex.response_id = fin.response_id or ex.response_id
    ex.response_model = fin.response_model or ex.response_model
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "refusal_text",
        "refusal_category",
    ):
        value = getattr(fin, name)
        if value is not None:
            setattr(ex, name, value)
    if fin.finish_reasons:
        ex.finish_reasons = fin.finish_reasons
    if fin.output_text:
        ex.output_text = fin.output_text
    if fin.tool_calls:
        ex.tool_calls = fin.tool_calls
    ex.refusal = ex.refusal or fin.refusal
