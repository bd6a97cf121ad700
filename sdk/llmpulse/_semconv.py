"""Read GenAI facts from span attributes written by any instrumentation.

OTel GenAI semantic conventions changed names over time and other projects use their
own (OpenLLMetry's ``gen_ai.prompt.N.*``, OpenInference's ``llm.*``). ``from_attributes``
maps all of them onto one ``Extracted`` record; the OTel bridge uses it in the SDK and
the collector uses it to normalise what third-party instrumentations send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ._extract import Extracted

__all__ = ["from_attributes", "is_genai", "provider_of", "request_model_of"]

_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
_REQUEST_MODEL_KEYS = ("gen_ai.request.model", "llm.request.model", "llm.model_name")
_RESPONSE_MODEL_KEYS = ("gen_ai.response.model", "llm.response.model", "llm.model_name")
_INPUT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
_OUTPUT_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
_CACHE_READ_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
_CACHE_WRITE_KEYS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
_REASONING_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)
_OUTPUT_TEXT_KEYS = ("gen_ai.completion.0.content", "llm.output_messages.0.message.content")
_GENAI_MARKERS = (
    "gen_ai.operation.name",
    "gen_ai.system",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "llm.model_name",
)


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        return int(value)
    return None


def is_genai(attrs: Mapping[str, Any]) -> bool:
    """True when the span describes a model call (any known convention)."""
    if attrs.get("openinference.span.kind") in ("LLM", "EMBEDDING"):
        return True
    return any(key in attrs for key in _GENAI_MARKERS)


def provider_of(attrs: Mapping[str, Any]) -> str | None:
    value = _first(attrs, _PROVIDER_KEYS)
    return value.lower() if isinstance(value, str) else None


def request_model_of(attrs: Mapping[str, Any]) -> str | None:
    value = _first(attrs, _REQUEST_MODEL_KEYS)
    return value if isinstance(value, str) else None


def _messages_text(raw: Any) -> str | None:
    """Text of the first assistant message in a semconv ``gen_ai.output.messages`` JSON."""
    if not isinstance(raw, str) or not raw.startswith("["):
        return None
    try:
        messages = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    texts: list[str] = []
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        parts = message.get("parts")
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("content"), str):
                texts.append(part["content"])
        if texts:
            break
    return "".join(texts) if texts else None


def _output_text(attrs: Mapping[str, Any]) -> str:
    """The reply's text: current output messages, then older names, then OpenInference's."""
    text = _messages_text(attrs.get("gen_ai.output.messages"))
    if text is None:
        value = _first(attrs, _OUTPUT_TEXT_KEYS)
        text = value if isinstance(value, str) else None
    if text is None and attrs.get("output.mime_type", "text/plain") == "text/plain":
        value = attrs.get("output.value")
        text = value if isinstance(value, str) else None
    return text or ""


def from_attributes(attrs: Mapping[str, Any], *, output_text: bool = True) -> Extracted:
    """Everything known about a model call's outcome, from its span attributes.

    ``output_text=False`` skips reading the reply's text (it parses the output messages'
    JSON): for a caller that already has a refusal verdict and needs nothing else from it.
    """
    ex = Extracted()
    model = _first(attrs, _RESPONSE_MODEL_KEYS)
    ex.response_model = model if isinstance(model, str) else None
    rid = attrs.get("gen_ai.response.id")
    ex.response_id = rid if isinstance(rid, str) else None
    ex.input_tokens = _int(_first(attrs, _INPUT_KEYS))
    ex.output_tokens = _int(_first(attrs, _OUTPUT_KEYS))
    ex.cache_read_tokens = _int(_first(attrs, _CACHE_READ_KEYS))
    ex.cache_write_tokens = _int(_first(attrs, _CACHE_WRITE_KEYS))
    ex.reasoning_tokens = _int(_first(attrs, _REASONING_KEYS))
    reasons = attrs.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, str):
        reasons = [reasons]
    if isinstance(reasons, list | tuple):
        ex.finish_reasons = [r for r in reasons if isinstance(r, str)]
    elif isinstance(attrs.get("gen_ai.completion.0.finish_reason"), str):
        ex.finish_reasons = [attrs["gen_ai.completion.0.finish_reason"]]
    if output_text:
        ex.output_text = _output_text(attrs)
    refusal = attrs.get("gen_ai.completion.0.refusal")
    if isinstance(refusal, str) and refusal:
        ex.refusal = True
        ex.refusal_text = refusal
    if "content_filter" in ex.finish_reasons:
        ex.refusal = True
        ex.refusal_category = "content_filter"
    elif "refusal" in ex.finish_reasons:
        ex.refusal = True
    return ex
