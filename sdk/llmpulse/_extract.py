"""Read what a model call returned, by duck typing, into one normalised record.

``@llm`` hands us whatever the user's function returned (an OpenAI ``ChatCompletion``,
``Response`` or ``CreateEmbeddingResponse``, an Anthropic ``Message``, their
``model_dump()`` dicts, a plain ``str``) or the chunks its generator yielded. We never
import ``openai`` or ``anthropic``: every field is read through :func:`_get`, which does
``getattr`` on objects and ``.get`` on mappings, so pydantic models and their dict forms
take the same path.

This runs in the background thread on every call, so it must stay cheap and must never
raise: an unknown shape gives an empty or partial :class:`Extracted`, a field of the wrong
type is ignored, and anything that still goes wrong is logged at debug level and counted
as ``extract_errors``.

Token counts follow the OTel GenAI conventions: ``input_tokens`` includes cached input.
OpenAI already reports it that way; Anthropic reports ``input_tokens`` without
``cache_read_input_tokens`` and ``cache_creation_input_tokens``, so we add them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from ._stats import stats

__all__ = [
    "Extracted",
    "extract_response",
    "extract_stream",
    "input_messages",
    "output_messages",
    "request_model",
]

log = logging.getLogger("llmpulse")

Message = dict[str, object]
_MISSING = object()


@dataclass(slots=True)
class Extracted:
    """What one model call returned, normalised across providers.

    ``input_tokens`` includes cached input tokens (OTel GenAI semconv). ``refusal`` is set
    only by a provider signal (OpenAI ``message.refusal`` or refusal content, a
    ``content_filter`` finish reason, Anthropic ``stop_reason == "refusal"``); the phrase
    heuristic lives elsewhere.
    """

    response_model: str | None = None
    response_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    finish_reasons: list[str] = field(default_factory=list)
    output_text: str = ""
    tool_calls: list[dict[str, object]] = field(default_factory=list)
    refusal: bool = False
    refusal_category: str | None = None
    refusal_text: str | None = None


# -- field access ---------------------------------------------------------------------------


_PYDANTIC, _MAPPING, _OBJECT = 1, 2, 3
_KINDS: dict[type, int] = {}  # how to read each class seen; a few dozen provider types


def _kind_of(cls: type) -> int:
    if getattr(cls, "__pydantic_fields__", None) is not None:
        kind = _PYDANTIC
    elif issubclass(cls, Mapping):
        kind = _MAPPING
    else:
        kind = _OBJECT
    if len(_KINDS) < 1024:  # classes made on the fly must not grow this forever
        _KINDS[cls] = kind
    return kind


def _get(obj: object, key: str) -> object:
    """``obj[key]`` for a mapping, ``obj.key`` otherwise; None when absent or when it raises."""
    cls = type(obj)
    if cls is dict:
        return obj.get(key)  # type: ignore[attr-defined]
    if obj is None:
        return None
    try:
        kind = _KINDS.get(cls) or _kind_of(cls)
        if kind == _PYDANTIC:
            # A pydantic v2 model (every openai/anthropic type). Its fields live in the
            # instance __dict__ and unknown keys in __pydantic_extra__; asking getattr for
            # a name it lacks costs ~3 µs (its __getattr__ raises), and we ask for many.
            value = obj.__dict__.get(key, _MISSING)
            if value is not _MISSING:
                return value
            extra = getattr(obj, "__pydantic_extra__", None)
            return extra.get(key) if type(extra) is dict else None
        if kind == _MAPPING:
            return obj.get(key)  # type: ignore[attr-defined]
        return getattr(obj, key, None)
    except Exception:  # a property that raises, a hostile __getattr__: treat as absent
        return None


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _nstr(v: object) -> str | None:
    """A non-empty str, else None (streams send ``""`` for "not known yet")."""
    return v if isinstance(v, str) and v else None


def _int(v: object) -> int | None:
    # bool is an int subclass and negative counts are garbage: both ignored.
    return v if type(v) is int and v >= 0 else None


def _list(v: object) -> list[object] | tuple[object, ...]:
    # Only real sequences: iterating a str, a generator or an arbitrary iterable would
    # either be wrong or consume something that is not ours.
    return v if isinstance(v, (list, tuple)) else ()


def _parse_args(v: object) -> object:
    """Tool-call arguments: parsed when they are a JSON string, else kept as given."""
    if isinstance(v, str) and v:
        try:
            return orjson.loads(v)
        except ValueError:  # orjson.JSONDecodeError, and anything else it cannot read
            return v
    return v


def _call(call_id: object, name: object, arguments: object) -> dict[str, object]:
    """One tool call as ``Extracted.tool_calls`` holds it."""
    return {"id": _str(call_id), "name": _str(name), "arguments": arguments}


def _guard_failed(what: str) -> None:
    log.debug("llmpulse could not read the %s", what, exc_info=True)
    stats.incr("extract_errors")


# -- usage ----------------------------------------------------------------------------------


def _apply_usage(u: object, ex: Extracted) -> None:
    """Read token counts from an OpenAI (chat, Responses, embeddings) or Anthropic usage."""
    if u is None:
        return
    cached: int | None
    written: int | None
    inp = _int(_get(u, "prompt_tokens"))
    if inp is not None or _get(u, "completion_tokens") is not None:
        # OpenAI Chat Completions / embeddings: prompt_tokens already includes the cache.
        out = _int(_get(u, "completion_tokens"))
        in_d = _get(u, "prompt_tokens_details")
        cached = _int(_get(in_d, "cached_tokens"))
        written = _int(_get(in_d, "cache_write_tokens"))
        reasoning = _int(_get(_get(u, "completion_tokens_details"), "reasoning_tokens"))
    else:
        inp = _int(_get(u, "input_tokens"))
        out = _int(_get(u, "output_tokens"))
        in_d = _get(u, "input_tokens_details")
        if in_d is not None:
            # OpenAI Responses: input_tokens already includes the cache.
            cached = _int(_get(in_d, "cached_tokens"))
            written = _int(_get(in_d, "cache_write_tokens"))
        else:
            # Anthropic: input_tokens counts only the uncached part.
            cached = _int(_get(u, "cache_read_input_tokens"))
            written = _int(_get(u, "cache_creation_input_tokens"))
            if inp is not None:
                inp += (cached or 0) + (written or 0)
        out_d = _get(u, "output_tokens_details")
        reasoning = _int(_get(out_d, "reasoning_tokens"))
        if reasoning is None:
            reasoning = _int(_get(out_d, "thinking_tokens"))  # Anthropic
    if inp is not None:
        ex.input_tokens = inp
    if out is not None:
        ex.output_tokens = out
    if cached is not None:
        ex.cache_read_tokens = cached
    if written is not None:
        ex.cache_write_tokens = written
    if reasoning is not None:
        ex.reasoning_tokens = reasoning


# -- whole responses ------------------------------------------------------------------------


def extract_response(obj: object) -> Extracted:
    """Normalise a non-streamed model response; never raises.

    >>> extract_response({"model": "m", "choices": [{"message": {"content": "hi"},
    ...                   "finish_reason": "stop"}]}).output_text
    'hi'
    """
    ex = Extracted()
    try:
        if isinstance(obj, str):
            ex.output_text = obj
        elif obj is not None and not isinstance(obj, (int, float, bytes, list, tuple)):
            _fill_response(obj, ex)
    except Exception:
        _guard_failed("model response")
    return ex


def _fill_response(obj: object, ex: Extracted) -> None:
    ex.response_id = _nstr(_get(obj, "id"))
    ex.response_model = _nstr(_get(obj, "model"))
    choices = _get(obj, "choices")
    if isinstance(choices, (list, tuple)):
        _chat_completion(choices, ex)
    else:
        output = _get(obj, "output")
        if isinstance(output, (list, tuple)):
            _responses(obj, output, ex)
        else:
            content = _get(obj, "content")
            if isinstance(content, (list, tuple)):
                _anthropic_message(obj, content, ex)
    _apply_usage(_get(obj, "usage"), ex)
    _finalize(ex)


def _finalize(ex: Extracted) -> None:
    if "content_filter" in ex.finish_reasons:
        ex.refusal = True
        ex.refusal_category = "content_filter"
    elif "refusal" in ex.finish_reasons:
        ex.refusal = True


def _text_of(content: object) -> str:
    """A message's text: a str, or the text parts of a list joined."""
    if isinstance(content, str):
        return content
    texts = []
    for part in _list(content):
        if isinstance(part, str):
            texts.append(part)
        elif _get(part, "type") in ("text", "input_text", "output_text"):
            text = _str(_get(part, "text"))
            if text:
                texts.append(text)
    return "".join(texts)


def _openai_tool_call(tc: object) -> dict[str, object] | None:
    fn = _get(tc, "function")
    if fn is not None:
        name = _get(fn, "name")
        args = _parse_args(_get(fn, "arguments"))
    else:
        custom = _get(tc, "custom")  # custom tools take free text: kept as given
        if custom is None:
            return None
        name = _get(custom, "name")
        args = _get(custom, "input")
    return _call(_get(tc, "id"), name, args)


def _chat_completion(choices: Sequence[object], ex: Extracted) -> None:
    for i, choice in enumerate(choices):
        reason = _nstr(_get(choice, "finish_reason"))
        if reason:
            ex.finish_reasons.append(reason)
        if i:
            continue  # text, refusal and tool calls come from the first choice
        msg = _get(choice, "message")
        if msg is None:
            ex.output_text = _str(_get(choice, "text")) or ""  # legacy Completions
            continue
        ex.output_text = _text_of(_get(msg, "content"))
        refusal = _nstr(_get(msg, "refusal"))
        if refusal:
            ex.refusal = True
            ex.refusal_text = refusal
        for tc in _list(_get(msg, "tool_calls")):
            call = _openai_tool_call(tc)
            if call is not None:
                ex.tool_calls.append(call)
        fc = _get(msg, "function_call")  # deprecated single function call
        if fc is not None:
            ex.tool_calls.append(_call(None, _get(fc, "name"), _parse_args(_get(fc, "arguments"))))


_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
_RESPONSE_STATUS = {"failed": "error", "cancelled": "cancelled"}


def _responses(obj: object, output: Sequence[object], ex: Extracted) -> None:
    texts: list[str] = []
    refusals: list[str] = []
    for item in output:
        kind = _get(item, "type")
        if kind == "message":
            for part in _list(_get(item, "content")):
                ptype = _get(part, "type")
                if ptype == "output_text":
                    text = _str(_get(part, "text"))
                    if text:
                        texts.append(text)
                elif ptype == "refusal":
                    ex.refusal = True
                    refusals.append(_str(_get(part, "refusal")) or "")
        elif kind == "function_call":
            args = _parse_args(_get(item, "arguments"))
            ex.tool_calls.append(_call(_get(item, "call_id"), _get(item, "name"), args))
        elif kind == "custom_tool_call":
            args = _get(item, "input")  # free text: kept as given
            ex.tool_calls.append(_call(_get(item, "call_id"), _get(item, "name"), args))
    ex.output_text = "".join(texts)
    if ex.refusal:
        ex.refusal_text = "".join(refusals) or None
    reason = _responses_finish_reason(obj, bool(ex.tool_calls))
    if reason:
        ex.finish_reasons.append(reason)


def _responses_finish_reason(obj: object, has_tool_calls: bool) -> str | None:
    """Map a Response's status to the Chat Completions finish-reason vocabulary."""
    status = _get(obj, "status")
    if status == "completed":
        return "tool_calls" if has_tool_calls else "stop"
    if status == "incomplete":
        why = _nstr(_get(_get(obj, "incomplete_details"), "reason"))
        if why is None:
            return "incomplete"
        return _INCOMPLETE_REASONS.get(why, why)
    return _RESPONSE_STATUS.get(status) if isinstance(status, str) else None


def _anthropic_message(obj: object, content: Sequence[object], ex: Extracted) -> None:
    texts: list[str] = []
    for block in content:
        kind = _get(block, "type")
        if kind == "text":
            text = _str(_get(block, "text"))
            if text:
                texts.append(text)
        elif kind == "tool_use":
            args = _parse_args(_get(block, "input"))
            ex.tool_calls.append(_call(_get(block, "id"), _get(block, "name"), args))
    ex.output_text = "".join(texts)
    stop = _nstr(_get(obj, "stop_reason"))
    if stop:
        ex.finish_reasons.append(stop)
        if stop == "refusal":
            ex.refusal_category = _nstr(_get(_get(obj, "stop_details"), "category"))


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


# -- messages (gen_ai.input.messages / gen_ai.output.messages) ----------------------------

_TEXT_TYPES = ("text", "input_text", "output_text")
_PART_TYPES = {"image_url": "image", "input_image": "image", "input_audio": "audio"}


def request_model(kwargs: Mapping[str, object]) -> str | None:
    """The ``model=`` keyword of the user's call, when it is a str."""
    return _nstr(_get(kwargs, "model"))


def input_messages(
    args: tuple[object, ...], kwargs: Mapping[str, object]
) -> list[dict[str, object]] | None:
    """The call's input as semconv ``gen_ai.input.messages``, or None when unrecognisable.

    Sources, first match wins: ``messages=`` (OpenAI chat, Anthropic, with Anthropic's
    ``system=`` as a leading system message), ``input=`` / ``instructions=`` (Responses),
    ``prompt=``, then the first positional argument (a str or a list of messages; after
    ``self`` on a method).

    >>> input_messages((), {"messages": [{"role": "user", "content": "hi"}]})
    [{'role': 'user', 'parts': [{'type': 'text', 'content': 'hi'}]}]
    """
    try:
        return _input_messages(args, kwargs) or None
    except Exception:
        _guard_failed("call's input messages")
        return None


def _input_messages(args: tuple[object, ...], kwargs: Mapping[str, object]) -> list[Message]:
    out: list[Message] = []
    messages = _get(kwargs, "messages")
    if isinstance(messages, (list, tuple)):
        system = _content_parts(_get(kwargs, "system"))
        if system:
            out.append({"role": "system", "parts": system})
        out.extend(_convert_messages(messages))
        return out
    given = _get(kwargs, "input")
    instructions = _nstr(_get(kwargs, "instructions"))
    if instructions or isinstance(given, (str, list, tuple)):
        if instructions:
            out.append({"role": "system", "parts": [_text_part(instructions)]})
        if isinstance(given, str):
            out.append({"role": "user", "parts": [_text_part(given)]})
        elif isinstance(given, (list, tuple)):
            out.extend(_convert_messages(given))
        return out
    prompt = _str(_get(kwargs, "prompt"))
    if prompt is not None:
        return [{"role": "user", "parts": [_text_part(prompt)]}]
    # The first positional argument; on a decorated method that is ``self``, so one
    # leading argument that is neither text nor a list is skipped.
    for first in _list(args)[:2]:
        if isinstance(first, str):
            return [{"role": "user", "parts": [_text_part(first)]}]
        if isinstance(first, (list, tuple)):
            return _convert_messages(first)
    return out


def _text_part(text: str) -> dict[str, object]:
    return {"type": "text", "content": text}


def _call_part(call_id: object, name: object, arguments: object) -> dict[str, object]:
    return {"type": "tool_call", **_call(call_id, name, arguments)}


def _response_part(call_id: object, response: object) -> dict[str, object]:
    return {"type": "tool_call_response", "id": _str(call_id), "response": _text_of(response)}


def _convert_messages(items: Sequence[object]) -> list[Message]:
    out: list[Message] = []
    for m in items:
        if isinstance(m, str):
            out.append({"role": "user", "parts": [_text_part(m)]})
            continue
        role = _nstr(_get(m, "role"))
        if role is None:
            _convert_item(m, out)  # Responses input items that are not messages
            continue
        if role == "developer":
            role = "system"
        content = _get(m, "content")
        if role == "tool":  # OpenAI tool result
            parts = [_response_part(_get(m, "tool_call_id"), content)]
        else:
            parts = _content_parts(content)
            for tc in _list(_get(m, "tool_calls")):
                call = _openai_tool_call(tc)
                if call is not None:
                    parts.append({"type": "tool_call", **call})
            # Anthropic sends tool results in a user message: it is the tool speaking.
            if parts and all(p["type"] == "tool_call_response" for p in parts):
                role = "tool"
        out.append({"role": role, "parts": parts})
    return out


def _convert_item(item: object, out: list[Message]) -> None:
    kind = _get(item, "type")
    if kind == "function_call":
        args = _parse_args(_get(item, "arguments"))
        part = _call_part(_get(item, "call_id"), _get(item, "name"), args)
        out.append({"role": "assistant", "parts": [part]})
    elif kind == "function_call_output":
        part = _response_part(_get(item, "call_id"), _get(item, "output"))
        out.append({"role": "tool", "parts": [part]})


def _content_parts(content: object) -> list[dict[str, object]]:
    if isinstance(content, str):
        return [_text_part(content)]
    parts: list[dict[str, object]] = []
    for block in _list(content):
        if isinstance(block, str):
            parts.append(_text_part(block))
            continue
        kind = _nstr(_get(block, "type"))
        if kind is None:
            continue
        if kind in _TEXT_TYPES:
            text = _str(_get(block, "text"))
            if text is not None:
                parts.append(_text_part(text))
        elif kind == "tool_use":
            args = _parse_args(_get(block, "input"))
            parts.append(_call_part(_get(block, "id"), _get(block, "name"), args))
        elif kind == "tool_result":
            parts.append(_response_part(_get(block, "tool_use_id"), _get(block, "content")))
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": _str(_get(block, "thinking")) or ""})
        else:
            # Images, audio, documents...: the kind only, never the payload.
            parts.append({"type": _PART_TYPES.get(kind, kind)})
    return parts


def output_messages(ex: Extracted) -> list[dict[str, object]]:
    """The reply as semconv ``gen_ai.output.messages``; ``[]`` when there is nothing.

    >>> output_messages(Extracted(output_text="hi", finish_reasons=["end_turn"]))[0]["parts"]
    [{'type': 'text', 'content': 'hi'}]
    """
    try:
        return _output_messages(ex)
    except Exception:
        _guard_failed("reply's output messages")
        return []


def _output_messages(ex: Extracted) -> list[dict[str, object]]:
    parts: list[dict[str, object]] = []
    text = ex.output_text or ex.refusal_text  # a refusal is what the model said
    if text:
        parts.append(_text_part(text))
    for call in ex.tool_calls:
        parts.append(_call_part(call.get("id"), call.get("name"), call.get("arguments")))
    if not parts and not ex.finish_reasons:
        return []
    reason = ex.finish_reasons[0] if ex.finish_reasons else "stop"
    return [{"role": "assistant", "parts": parts, "finish_reason": reason}]
