"""A fake of Anthropic's HTTP API on 127.0.0.1, for driving the real ``anthropic`` client library in tests.

Point a client at it with ``anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test")``; ``base_url`` has
no ``/v1`` since the client adds ``/v1/messages`` itself. The answers follow the real wire formats closely enough
that the client parses every one into its typed (pydantic) models:

* ``POST /v1/messages``: a ``message`` with ``text`` and ``tool_use`` content blocks, or with ``"stream": true`` the
  SSE events ``message_start``, then per block ``content_block_start`` / ``content_block_delta`` (``text_delta``,
  ``input_json_delta``) / ``content_block_stop`` (with a ``ping`` after the first start), ``message_delta``
  (``stop_reason`` and cumulative usage) and ``message_stop``. Both ``messages.create(stream=True)`` and the
  ``messages.stream()`` helper (``text_stream``, ``get_final_message()``) work against it.
* ``POST /v1/messages/count_tokens``: ``{"input_tokens": n}``.
* anything else: 404 in Anthropic's error shape.

Token counts are estimates (about 4 characters a token) unless ``input_tokens`` / ``output_tokens`` are set.
Not supported: thinking blocks, citations, server tools, the batch and files APIs.

Failure scripting and the request log come from ``FakeServer`` (see ``fake_openai``): ``fail_next()`` (with
Anthropic's ``{"type": "error", "error": {"type", "message"}}`` body and a ``retry-after`` header), ``delay``,
``chunk_delay``, ``break_stream_after``, ``stream_error_after`` (an ``event: error`` with an ``overloaded_error``),
``requests``, ``calls``, ``headers``, ``times``.
"""

from __future__ import annotations

import json
from typing import Any

from fake_openai import FakeServer, JSONReply, SSEReply, estimate_tokens, fragments, new_id, pieces

_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


class FakeAnthropic(FakeServer):
    """A fake Anthropic API (see the module docstring). Settable attributes, read at each request:

    * ``reply``: the assistant text (``""`` for no text block, e.g. with tool uses only).
    * ``model``: the model name answered, whatever the request asked.
    * ``refusal``: when true, ``stop_reason`` is ``"refusal"`` (with ``stop_details``); ``reply`` is still sent, as
      the text produced before the refusal, so set it to ``""`` for an empty answer.
    * ``stop_reason``: ``None`` (default) means ``"refusal"`` / ``"tool_use"`` / ``"end_turn"`` as fits; set e.g.
      ``"max_tokens"``.
    * ``tool_uses``: ``[{"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]``, sent as
      ``tool_use`` blocks after the text.
    * ``cache_read_input_tokens`` / ``cache_creation_input_tokens``: reported in ``usage``, apart from
      ``input_tokens`` (as the real API does).
    * ``input_tokens`` / ``output_tokens``: exact counts instead of the estimates.
    """

    def __init__(self, reply: str = "Sure, happy to help!", model: str = "claude-sonnet-4-20250514") -> None:
        super().__init__()
        self.reply = reply
        self.model = model
        self.refusal = False
        self.stop_reason: str | None = None
        self.tool_uses: list[dict[str, Any]] = []
        self.cache_read_input_tokens = 0
        self.cache_creation_input_tokens = 0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    @property
    def base_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic``: ``http://127.0.0.1:<port>`` (the client adds ``/v1/...``)."""
        return self.origin

    def route(self, method: str, path: str, body: dict[str, Any]) -> JSONReply | SSEReply:
        """Dispatch a request to messages or count_tokens; anything else is a 404."""
        if method == "POST" and path == "/v1/messages":
            if body.get("stream"):
                events: list[tuple[str | None, dict[str, Any] | str]] = [(e["type"], e) for e in self.events(body)]
                return SSEReply(events, error=lambda _: ("error", self.error_payload(529)))
            return JSONReply(self.message(body))
        if method == "POST" and path == "/v1/messages/count_tokens":
            return JSONReply({"input_tokens": self._input_tokens(body)})
        return JSONReply(self.error_payload(404, f"Not found: {method} {path}"), 404)

    def error_payload(
        self, status: int, message: str | None = None, error_type: str | None = None, code: str | None = None
    ) -> dict[str, Any]:
        """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
        default_type, default_message = _ANTHROPIC_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"Error {status}.")
        )
        error: dict[str, Any] = {"type": error_type or default_type, "message": message or default_message}
        if code:
            error["details"] = {"error_code": code}
        return {"type": "error", "error": error, "request_id": new_id("req_")}

    def response_headers(self) -> dict[str, str]:
        """``request-id``, as the real API sends."""
        return {"request-id": new_id("req_")}

    # --- messages ---------------------------------------------------------------------------------------------

    def _input_tokens(self, body: dict[str, Any]) -> int:
        if self.input_tokens is not None:
            return self.input_tokens
        tokens = sum(estimate_tokens(str(m.get("content", ""))) for m in body.get("messages", []))
        if body.get("system"):
            tokens += estimate_tokens(str(body["system"]))
        return tokens

    def _output_tokens(self) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        return estimate_tokens(self.reply + "".join(json.dumps(t.get("input", {})) for t in self.tool_uses))

    def _stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        if self.refusal:
            return "refusal"
        return "tool_use" if self.tool_uses else "end_turn"

    def _usage(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "input_tokens": self._input_tokens(body),
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": self._output_tokens(),
            "service_tier": "standard",
        }

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``message`` answering ``body``."""
        content: list[dict[str, Any]] = [{"type": "text", "text": self.reply}] if self.reply else []
        content += [
            {"type": "tool_use", "id": t["id"], "name": t["name"], "input": t.get("input", {})} for t in self.tool_uses
        ]
        stop_reason = self._stop_reason()
        return {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "stop_details": (
                {"type": "refusal", "category": None, "explanation": None} if stop_reason == "refusal" else None
            ),
            "usage": self._usage(body),
        }

    def events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The SSE events (each with its ``type``, which is also the ``event:`` name) of the streamed answer."""
        final = self.message(body)
        start = {**final, "content": [], "stop_reason": None, "stop_details": None}
        start["usage"] = {**final["usage"], "output_tokens": 1}
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
        for index, block in enumerate(final["content"]):
            if block["type"] == "text":
                opening = {**block, "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
            else:
                opening = {**block, "input": {}}
                deltas = [{"type": "input_json_delta", "partial_json": ""}]
                deltas += [
                    {"type": "input_json_delta", "partial_json": f} for f in fragments(json.dumps(block["input"]))
                ]
            events.append({"type": "content_block_start", "index": index, "content_block": opening})
            if index == 0:
                events.append({"type": "ping"})
            events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
            events.append({"type": "content_block_stop", "index": index})
        if not final["content"]:
            events.append({"type": "ping"})
        usage = {
            k: final["usage"][k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        }
        delta = {"stop_reason": final["stop_reason"], "stop_sequence": None, "stop_details": final["stop_details"]}
        events.append(
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {**usage, "output_tokens": final["usage"]["output_tokens"]},
            }
        )
        events.append({"type": "message_stop"})
        return events
