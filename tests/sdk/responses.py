"""Plain-dict model responses and stream chunks shaped like OpenAI's and Anthropic's."""

from __future__ import annotations

from typing import Any


def openai_completion(
    text: str = "hello there",
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 1200,
    completion_tokens: int = 40,
    cached: int = 200,
    finish_reason: str = "stop",
    refusal: str | None = None,
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": None if refusal else text, "refusal": refusal},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def openai_chunks(
    text: str = "hello there friend", *, model: str = "gpt-4o-mini-2024-07-18", usage: bool = True
) -> list[dict[str, Any]]:
    words = text.split(" ")
    chunks: list[dict[str, Any]] = []
    for i, word in enumerate(words):
        chunks.append(
            {
                "id": "chatcmpl-s1",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word}, "finish_reason": None}],
            }
        )
    chunks.append(
        {
            "id": "chatcmpl-s1",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
    )
    if usage:
        chunks.append(
            {
                "id": "chatcmpl-s1",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [],
                "usage": {"prompt_tokens": 50, "completion_tokens": len(words), "total_tokens": 50 + len(words)},
            }
        )
    return chunks


def anthropic_message(
    text: str = "hello there", *, stop_reason: str = "end_turn", model: str = "claude-sonnet-4-5-20250929"
) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "usage": {
            "input_tokens": 100,
            "output_tokens": 20,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 50,
        },
    }
