"""Read what a model call returned, by duck typing, into one normalised record.

``@llm`` hands us whatever the user's function returned (an OpenAI ``ChatCompletion``,
``Response`` or ``CreateEmbeddingResponse``, an Anthropic ``Message``, their
``model_dump()`` dicts, a plain ``str``) or the chunks its generator yielded. We never
import ``openai`` or ``anthropic``: every field is read through :func:`_get`, which does
``getattr`` on objects and ``.get`` on mappings, so pydantic models and their dict forms
take the same path. Streams are read in ``_stream.py``, message content in ``_messages.py``.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from ._config import speedup
from ._stats import stats

__all__ = ["Extracted", "extract_response"]

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


# Where the C extension is built it reads the most common response, a plain Chat Completion
# (no tool calls, no extra fields), with these same rules, and gives up (None) on anything
# else; its contract is in _speedups.c and tests/sdk/test_speedups.py holds it to this module.
_chat = speedup("ChatExtractor", _KINDS, _PYDANTIC, Extracted)  # None: every response is read below
_read_chat: Callable[[object], Extracted | None] | None = None if _chat is None else _chat.extract


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


class _Fields(Protocol):
    def get(self, key: str, /) -> object: ...


class _AttrFields:
    """``.get`` over an object's attributes, None when absent or when reading raises."""

    __slots__ = ("_obj",)

    def __init__(self, obj: object) -> None:
        self._obj = obj

    def get(self, key: str, /) -> object:
        try:
            return getattr(self._obj, key, None)
        except Exception:
            return None


class _MappingFields(_AttrFields):
    def get(self, key: str, /) -> object:
        try:
            return self._obj.get(key)  # type: ignore[attr-defined]
        except Exception:
            return None


_NO_FIELDS: dict[str, object] = {}


def _fields(obj: object) -> _Fields:
    """Something whose ``.get(key)`` answers what :func:`_get` would for ``obj``.

    For a dict, and for a pydantic model (its fields are its ``__dict__``, with extra
    keys merged under them), that is a plain dict: reading several fields of one object
    then costs a dict lookup each instead of a call to ``_get`` each.
    """
    cls = type(obj)
    if cls is dict:
        return obj  # type: ignore[return-value]
    if obj is None:
        return _NO_FIELDS
    try:
        kind = _KINDS.get(cls) or _kind_of(cls)
        if kind == _PYDANTIC:
            fields = obj.__dict__
            extra = getattr(obj, "__pydantic_extra__", None)
            return {**extra, **fields} if type(extra) is dict and extra else fields
        if kind == _MAPPING:
            return _MappingFields(obj)
    except Exception:
        return _NO_FIELDS
    return _AttrFields(obj)


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
    f = _fields(u)
    v = f.get("prompt_tokens")
    inp = v if type(v) is int and v >= 0 else None  # _int, inlined on the common path
    completion = f.get("completion_tokens")
    if inp is not None or completion is not None:
        # OpenAI Chat Completions / embeddings: prompt_tokens already includes the cache.
        out = completion if type(completion) is int and completion >= 0 else None
        details = f.get("prompt_tokens_details")
        if details is None:
            cached = written = None
        else:
            in_d = _fields(details)
            v = in_d.get("cached_tokens")
            cached = v if type(v) is int and v >= 0 else None
            written = _int(in_d.get("cache_write_tokens"))
        details = f.get("completion_tokens_details")
        reasoning = None if details is None else _int(_get(details, "reasoning_tokens"))
    else:
        inp = _int(f.get("input_tokens"))
        out = _int(f.get("output_tokens"))
        in_details = f.get("input_tokens_details")
        if in_details is not None:
            # OpenAI Responses: input_tokens already includes the cache.
            in_d = _fields(in_details)
            cached = _int(in_d.get("cached_tokens"))
            written = _int(in_d.get("cache_write_tokens"))
        else:
            # Anthropic: input_tokens counts only the uncached part.
            cached = _int(f.get("cache_read_input_tokens"))
            written = _int(f.get("cache_creation_input_tokens"))
            if inp is not None:
                inp += (cached or 0) + (written or 0)
        out_d = _fields(f.get("output_tokens_details"))
        reasoning = _int(out_d.get("reasoning_tokens"))
        if reasoning is None:
            reasoning = _int(out_d.get("thinking_tokens"))  # Anthropic
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
    if _read_chat is not None:
        done = _read_chat(obj)
        if done is not None:
            return done
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
    f = _fields(obj)
    # _nstr inlined: this runs on every call.
    v = f.get("id")
    ex.response_id = v if isinstance(v, str) and v else None
    v = f.get("model")
    ex.response_model = v if isinstance(v, str) and v else None
    choices = f.get("choices")
    if isinstance(choices, (list, tuple)):
        _chat_completion(choices, ex)
    else:
        output = f.get("output")
        if isinstance(output, (list, tuple)):
            _responses(obj, output, ex)
        else:
            content = f.get("content")
            if isinstance(content, (list, tuple)):
                _anthropic_message(obj, content, ex)
    _apply_usage(f.get("usage"), ex)
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
        c = _fields(choice)
        reason = c.get("finish_reason")
        if isinstance(reason, str) and reason:
            ex.finish_reasons.append(reason)
        if i:
            continue  # text, refusal and tool calls come from the first choice
        msg = c.get("message")
        if msg is None:
            ex.output_text = _str(c.get("text")) or ""  # legacy Completions
            continue
        m = _fields(msg)
        content = m.get("content")
        ex.output_text = content if isinstance(content, str) else _text_of(content)
        refusal = m.get("refusal")
        if isinstance(refusal, str) and refusal:
            ex.refusal = True
            ex.refusal_text = refusal
        tool_calls = m.get("tool_calls")
        if tool_calls is not None:
            for tc in _list(tool_calls):
                call = _openai_tool_call(tc)
                if call is not None:
                    ex.tool_calls.append(call)
        fc = m.get("function_call")  # deprecated single function call
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
