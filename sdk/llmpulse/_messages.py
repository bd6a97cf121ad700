"""Build ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (OTel GenAI semconv shapes)
from a call's arguments and its ``Extracted`` result."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ._extract import (
    Extracted,
    Message,
    _call,
    _get,
    _guard_failed,
    _list,
    _nstr,
    _openai_tool_call,
    _parse_args,
    _str,
    _text_of,
)

__all__ = ["input_messages", "output_messages", "request_model", "simple_chat"]

log = logging.getLogger("llmpulse")

# -- messages (gen_ai.input.messages / gen_ai.output.messages) ----------------------------

_TEXT_TYPES = ("text", "input_text", "output_text")
_PART_TYPES = {"image_url": "image", "input_image": "image", "input_audio": "audio"}


def request_model(kwargs: Mapping[str, object]) -> str | None:
    """The ``model=`` keyword of the user's call, when it is a str."""
    return _nstr(_get(kwargs, "model"))


def input_messages(args: tuple[object, ...], kwargs: Mapping[str, object]) -> list[dict[str, object]] | None:
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


def simple_chat(args: tuple[object, ...], kwargs: Mapping[str, object]) -> list[tuple[str, str]] | None:
    """The input as ``(role, text)`` pairs when it has the common shape, else None.

    The common shape: the list ``input_messages`` would read (``messages=``, or the first
    positional list when no other input keyword is given) holds only plain dicts with a
    non-empty str ``role`` (not ``tool``), a str ``content`` and no ``tool_calls``. For
    it, ``input_messages`` gives one text part per message (``developer`` read as
    ``system``), so the caller can write the JSON without building that structure.
    """
    if type(kwargs) is not dict:
        return None
    if kwargs:
        messages = kwargs.get("messages")
        if messages is None:
            if "input" in kwargs or "instructions" in kwargs or "prompt" in kwargs:
                return None
        elif (type(messages) is not list and type(messages) is not tuple) or kwargs.get("system") is not None:
            return None
    else:
        messages = None
    if messages is None:
        for first in args[:2]:
            if type(first) is list or type(first) is tuple:
                messages = first
                break
            if isinstance(first, (str, list, tuple)):
                return None
        else:
            return None
    out: list[tuple[str, str]] = []
    for m in messages:
        if type(m) is not dict:
            return None
        role = m.get("role")
        content = m.get("content")
        if type(role) is not str or not role or role == "tool" or type(content) is not str:
            return None
        if m.get("tool_calls") is not None:
            return None
        out.append(("system" if role == "developer" else role, content))
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
