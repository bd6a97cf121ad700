"""A fake of OpenAI's HTTP API on 127.0.0.1, for driving the real ``openai`` client library in tests.

Point a client at it with ``openai.OpenAI(base_url=fake.base_url, api_key="sk-test")``. The answers follow
the real wire formats closely enough that the client parses every one into its typed (pydantic) models:

* ``POST /v1/chat/completions``: a ``chat.completion``, or with ``"stream": true`` SSE ``data:`` chunks ending in
  ``data: [DONE]`` (plus the ``choices: []`` usage chunk when ``stream_options.include_usage`` is set). Supports
  text (``reply``), refusals (``refusal``; streamed as ``delta.refusal``), tool calls (``tool_calls``; streamed as
  ``delta.tool_calls`` fragments with ``index``), any ``finish_reason``, and cached / reasoning token details.
* ``POST /v1/responses`` (the Responses API): a ``response`` object with a ``message`` output item (``output_text``
  or ``refusal`` content) and/or ``function_call`` items, or with ``"stream": true`` the SSE event sequence
  ``response.created`` ... ``response.completed`` with ``event:`` lines and ``sequence_number``. A
  ``finish_reason`` of ``"length"`` or ``"content_filter"`` gives an ``incomplete`` response.
* ``POST /v1/embeddings``: one small deterministic unit vector per input, as floats or base64 float32 as requested
  (the client asks for base64 unless told otherwise, and decodes it back to floats).
* anything else: 404 in OpenAI's error shape.

Token counts are estimates (about 4 characters a token) unless ``prompt_tokens`` / ``completion_tokens`` are set.
Not supported: ``n > 1``, logprobs, audio, images, the legacy ``/v1/completions`` and other endpoints.

The scripting shared with ``FakeAnthropic`` lives in ``FakeServer``: ``fail_next()``, ``delay``, ``chunk_delay``,
``break_stream_after``, ``stream_error_after``, and the request log (``requests``, ``calls``, ``headers``, ``times``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import struct
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from typing_extensions import Self


class Call(NamedTuple):
    """One recorded request: its path (without query string) and parsed JSON body (``{}`` when empty)."""

    path: str
    body: dict[str, Any]


@dataclass
class JSONReply:
    """A JSON answer."""

    payload: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SSEReply:
    """A ``text/event-stream`` answer: ``(event name or None, data)`` pairs, data a dict (sent as JSON) or raw text.

    ``error(n)`` makes the event this API sends when a stream fails midway, as the n-th event (for
    ``stream_error_after``).
    """

    events: list[tuple[str | None, dict[str, Any] | str]]
    error: Callable[[int], tuple[str | None, dict[str, Any]]] | None = None


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    message: str | None
    error_type: str | None
    code: str | None


def new_id(prefix: str) -> str:
    """A fresh identifier in the providers' style, e.g. ``chatcmpl-1f3a...`` or ``msg_1f3a...``."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def estimate_tokens(text: str) -> int:
    """The fakes' token estimate: about four characters a token, at least one."""
    return len(text) // 4 + 1


def pieces(text: str) -> list[str]:
    """Split ``text`` into word-sized stream deltas whose concatenation is exactly ``text``."""
    return [p for p in re.split(r"(?<= )", text) if p]


def fragments(text: str, size: int = 8) -> list[str]:
    """Split ``text`` (a JSON document) into fixed-size fragments, as tool-call arguments are streamed."""
    return [text[i : i + size] for i in range(0, len(text), size)]


class FakeServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) that answers from ``route()``; use as a context manager.

    Scripting, applied to every endpoint:

    * ``fail_next(status, times=1, retry_after=None, message=None)``: the next ``times`` requests get ``status``
      with the API's error body (``error_payload()``) and, if given, a ``Retry-After`` header.
    * ``delay``: seconds to wait before answering any request (to trigger client timeouts).
    * ``chunk_delay``: seconds to wait between the events of a stream (to measure time to first token).
    * ``break_stream_after``: close the connection, without ending the chunked body, after that many SSE events.
    * ``stream_error_after``: after that many SSE events, send the API's in-stream error event and end the stream.

    Every request is recorded, failed ones included: ``requests`` (parsed JSON bodies, ``{}`` when empty),
    ``calls`` (``Call(path, body)``), ``headers`` (lower-cased request headers) and ``times`` (``time.monotonic()``
    on arrival), all in arrival order.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.delay: float = 0.0
        self.chunk_delay: float = 0.0
        self.break_stream_after: int | None = None
        self.stream_error_after: int | None = None
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle(self) -> None:
                with contextlib.suppress(ConnectionError):  # the client gave up (a timeout) or went away
                    super().handle()

            def do_POST(self) -> None:
                fake._handle(self)

            do_GET = do_POST
            do_PUT = do_POST
            do_PATCH = do_POST
            do_DELETE = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # a short poll interval: shutdown() waits for it
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def paths(self) -> list[str]:
        """The path of every request so far, in order."""
        return [call.path for call in self.calls]

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``, without any API prefix."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
        *,
        error_type: str | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (any path) with ``status`` and this API's error body.

        ``message``, ``error_type`` and ``code`` default to what the real API sends for that status.
        ``retry_after`` (seconds, fractions allowed) adds a ``Retry-After`` header.
        """
        with self._lock:
            self._failures.extend(_Failure(status, retry_after, message, error_type, code) for _ in range(times))

    # --- to be provided by each API ---------------------------------------------------------------------------

    def route(self, method: str, path: str, body: dict[str, Any]) -> JSONReply | SSEReply:
        """The answer to a request that is not scripted to fail."""
        raise NotImplementedError

    def error_payload(
        self, status: int, message: str | None = None, error_type: str | None = None, code: str | None = None
    ) -> dict[str, Any]:
        """This API's error body for ``status``."""
        raise NotImplementedError

    def response_headers(self) -> dict[str, str]:
        """Headers added to every answer (request ids and the like)."""
        return {}

    # --- the HTTP side ----------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        path = urlsplit(h.path).path.rstrip("/")
        try:
            body: Any = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(body if isinstance(body, dict) else {})
            self.calls.append(Call(path, self.requests[-1]))
            self.headers.append({k.lower(): v for k, v in h.headers.items()})
            self.times.append(time.monotonic())
            failure = self._failures.pop(0) if self._failures else None
        if self.delay > 0 and self._stopping.wait(self.delay):
            h.close_connection = True  # the fake is shutting down: leave without answering
            return
        if failure is not None:
            headers = {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
            payload = self.error_payload(failure.status, failure.message, failure.error_type, failure.code)
            self._send_json(h, JSONReply(payload, failure.status, headers))
            return
        if not isinstance(body, dict):
            self._send_json(h, JSONReply(self.error_payload(400, "The request body is not a JSON object."), 400))
            return
        try:
            reply = self.route(h.command, path, body)
        except Exception:
            # a bug in the fake: show it to the test rather than dropping the connection
            reply = JSONReply(self.error_payload(500, f"fake server error:\n{traceback.format_exc()}"), 500)
        if isinstance(reply, SSEReply):
            self._send_sse(h, reply)
        else:
            self._send_json(h, reply)

    def _send_json(self, h: BaseHTTPRequestHandler, reply: JSONReply) -> None:
        data = json.dumps(reply.payload).encode()
        h.send_response(reply.status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in {**self.response_headers(), **reply.headers}.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)

    def _send_sse(self, h: BaseHTTPRequestHandler, reply: SSEReply) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        for name, value in self.response_headers().items():
            h.send_header(name, value)
        h.end_headers()
        events = reply.events
        if self.stream_error_after is not None and reply.error is not None:
            events = [*events[: self.stream_error_after], reply.error(min(self.stream_error_after, len(events)))]
        for n, (event_name, data) in enumerate(events):
            if self.break_stream_after is not None and n >= self.break_stream_after:
                h.close_connection = True  # no terminating chunk: the client sees a truncated body
                return
            if n and self.chunk_delay > 0 and self._stopping.wait(self.chunk_delay):
                h.close_connection = True
                return
            text = data if isinstance(data, str) else json.dumps(data)
            frame = ((f"event: {event_name}\n" if event_name else "") + f"data: {text}\n\n").encode()
            h.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()


_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "You are not allowed to sample from this model."),
    404: ("invalid_request_error", None, "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_FINGERPRINT = "fp_fake0000"


class FakeOpenAI(FakeServer):
    """A fake OpenAI API (see the module docstring). Settable attributes, read at each request:

    * ``reply``: the assistant text (``None`` or ``""`` for none, e.g. with tool calls only).
    * ``refusal``: when set, the answer is this refusal instead of ``reply`` and ``tool_calls``.
    * ``model``: the model name answered, whatever the request asked.
    * ``finish_reason``: ``None`` (default) means ``"tool_calls"`` with tool calls, else ``"stop"``; set e.g.
      ``"length"`` or ``"content_filter"`` (the Responses API then answers ``status: "incomplete"``).
    * ``tool_calls``: ``[{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]`` (arguments
      a JSON string or a dict); chat answers ``message.tool_calls``, the Responses API ``function_call`` items.
    * ``cached_tokens`` / ``reasoning_tokens``: reported in the usage details, and included in the prompt /
      completion totals (the real API counts them there too).
    * ``prompt_tokens`` / ``completion_tokens``: exact totals instead of the estimates.
    * ``embedding_dimensions``: vector length when the request gives no ``dimensions``.
    """

    def __init__(self, reply: str | None = "sure, happy to help!", model: str = "gpt-4o-mini-2024-07-18") -> None:
        super().__init__()
        self.reply = reply
        self.refusal: str | None = None
        self.model = model
        self.finish_reason: str | None = None
        self.tool_calls: list[dict[str, Any]] = []
        self.cached_tokens = 0
        self.reasoning_tokens = 0
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.embedding_dimensions = 8

    @property
    def base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI``: ``http://127.0.0.1:<port>/v1``."""
        return f"{self.origin}/v1"

    def route(self, method: str, path: str, body: dict[str, Any]) -> JSONReply | SSEReply:
        """Dispatch a request to chat completions, responses or embeddings; anything else is a 404."""
        if method == "POST" and path == "/v1/chat/completions":
            if body.get("stream"):
                events: list[tuple[str | None, dict[str, Any] | str]] = [(None, c) for c in self.chunks(body)]
                return SSEReply([*events, (None, "[DONE]")], error=lambda _: (None, self.error_payload(500)))
            return JSONReply(self.completion(body))
        if method == "POST" and path == "/v1/responses":
            if body.get("stream"):
                return SSEReply([(e["type"], e) for e in self.response_events(body)], error=self._response_error)
            return JSONReply(self.response(body))
        if method == "POST" and path == "/v1/embeddings":
            return JSONReply(self.embeddings(body))
        return JSONReply(self.error_payload(404, f"Invalid URL ({method} {path})"), 404)

    @staticmethod
    def _response_error(sequence_number: int) -> tuple[str, dict[str, Any]]:
        message = "The server had an error while processing your request."
        error = {"type": "error", "code": "server_error", "message": message, "param": None}
        return "error", {**error, "sequence_number": sequence_number}

    def error_payload(
        self, status: int, message: str | None = None, error_type: str | None = None, code: str | None = None
    ) -> dict[str, Any]:
        """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
        default_type, default_code, default_message = _OPENAI_ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, f"Error {status}.")
        )
        return {
            "error": {
                "message": message or default_message,
                "type": error_type or default_type,
                "param": None,
                "code": code or default_code,
            }
        }

    def response_headers(self) -> dict[str, str]:
        """``x-request-id`` and ``openai-processing-ms``, as the real API sends."""
        return {"x-request-id": new_id("req_"), "openai-processing-ms": "1"}

    # --- usage ------------------------------------------------------------------------------------------------

    def _output_tokens(self) -> int:
        if self.completion_tokens is not None:
            return self.completion_tokens
        text = (self.refusal or "") if self.refusal else (self.reply or "")
        text += "".join(self._arguments(c) for c in ([] if self.refusal else self.tool_calls))
        return estimate_tokens(text) + self.reasoning_tokens

    def _usage(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.prompt_tokens is not None:
            prompt = self.prompt_tokens
        else:
            prompt = sum(estimate_tokens(str(m.get("content", ""))) for m in body.get("messages", []))
            prompt += self.cached_tokens
        completion = self._output_tokens()
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _arguments(call: dict[str, Any]) -> str:
        arguments = call.get("arguments", "{}")
        return arguments if isinstance(arguments, str) else json.dumps(arguments)

    def _finish_reason(self) -> str:
        if self.finish_reason:
            return self.finish_reason
        return "tool_calls" if self.tool_calls and not self.refusal else "stop"

    # --- chat completions -------------------------------------------------------------------------------------

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``chat.completion`` answering ``body``."""
        message: dict[str, Any] = {"role": "assistant", "content": self.reply, "refusal": None, "annotations": []}
        if self.refusal:
            message["content"] = None
            message["refusal"] = self.refusal
        elif self.tool_calls:
            message["content"] = self.reply or None
            message["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": self._arguments(c)}}
                for c in self.tool_calls
            ]
        return {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "finish_reason": self._finish_reason(), "message": message, "logprobs": None}],
            "usage": self._usage(body),
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }

    def chunks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The ``chat.completion.chunk`` objects of the streamed answer to ``body`` (without ``[DONE]``)."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base: dict[str, Any] = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**base, "choices": [choice]}

        if self.refusal:
            out = [chunk({"role": "assistant", "content": None, "refusal": ""})]
            out += [chunk({"refusal": p}) for p in pieces(self.refusal)]
        else:
            content = "" if self.reply or not self.tool_calls else None
            out = [chunk({"role": "assistant", "content": content, "refusal": None})]
            out += [chunk({"content": p}) for p in pieces(self.reply or "")]
            for index, call in enumerate(self.tool_calls):
                head = {"index": index, "id": call["id"], "type": "function"}
                out.append(chunk({"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]}))
                out += [
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": f}}]})
                    for f in fragments(self._arguments(call))
                ]
        out.append(chunk({}, self._finish_reason()))
        if include_usage:
            out.append({**base, "choices": [], "usage": self._usage(body)})
        return out

    # --- responses --------------------------------------------------------------------------------------------

    def _response_usage(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.prompt_tokens is not None:
            prompt = self.prompt_tokens
        else:
            items = body.get("input", "")
            texts = [items] if isinstance(items, str) else [str(i.get("content", i)) for i in items]
            prompt = sum(estimate_tokens(t) for t in texts) + self.cached_tokens
            if body.get("instructions"):
                prompt += estimate_tokens(str(body["instructions"]))
        completion = self._output_tokens()
        return {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": self.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": prompt + completion,
        }

    def response(self, body: dict[str, Any]) -> dict[str, Any]:
        """The Responses API ``response`` object answering ``body``."""
        incomplete = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(self._finish_reason())
        status = "incomplete" if incomplete else "completed"
        output: list[dict[str, Any]] = []

        def message(part: dict[str, Any]) -> dict[str, Any]:
            return {"id": new_id("msg_"), "type": "message", "status": status, "role": "assistant", "content": [part]}

        if self.refusal:
            output.append(message({"type": "refusal", "refusal": self.refusal}))
        else:
            if self.reply or not self.tool_calls:
                text = self.reply or ""
                output.append(message({"type": "output_text", "text": text, "annotations": [], "logprobs": []}))
            output += [
                {
                    "id": new_id("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call["id"],
                    "name": call["name"],
                    "arguments": self._arguments(call),
                }
                for call in self.tool_calls
            ]
        function_defaults = {"description": None, "parameters": None, "strict": True}
        tools = [
            {**function_defaults, **tool} if tool.get("type") == "function" else tool for tool in body.get("tools", [])
        ]
        now = int(time.time())
        return {
            "id": new_id("resp_"),
            "object": "response",
            "created_at": now,
            "status": status,
            "completed_at": None if incomplete else now,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": tools,
            "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": self._response_usage(body),
            "user": None,
            "metadata": body.get("metadata") or {},
        }

    def response_events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The SSE events (each with ``type`` and ``sequence_number``) of the streamed answer to ``body``."""
        final = self.response(body)
        start = {**final, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
        start["incomplete_details"] = None
        events: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": start}),
            ("response.in_progress", {"response": start}),
        ]
        for index, item in enumerate(final["output"]):
            if item["type"] == "message":
                added = {**item, "status": "in_progress", "content": []}
                events.append(("response.output_item.added", {"output_index": index, "item": added}))
                for content_index, part in enumerate(item["content"]):
                    where = {"item_id": item["id"], "output_index": index, "content_index": content_index}
                    kind = "output_text" if part["type"] == "output_text" else "refusal"
                    field_name = "text" if kind == "output_text" else "refusal"
                    extra: dict[str, Any] = {"logprobs": []} if kind == "output_text" else {}
                    events.append(("response.content_part.added", {**where, "part": {**part, field_name: ""}}))
                    events += [
                        (f"response.{kind}.delta", {**where, "delta": p, **extra}) for p in pieces(part[field_name])
                    ]
                    events.append((f"response.{kind}.done", {**where, field_name: part[field_name], **extra}))
                    events.append(("response.content_part.done", {**where, "part": part}))
            else:
                added = {**item, "arguments": "", "status": "in_progress"}
                events.append(("response.output_item.added", {"output_index": index, "item": added}))
                where = {"item_id": item["id"], "output_index": index}
                events += [
                    ("response.function_call_arguments.delta", {**where, "delta": f})
                    for f in fragments(item["arguments"])
                ]
                events.append(("response.function_call_arguments.done", {**where, "arguments": item["arguments"]}))
            events.append(("response.output_item.done", {"output_index": index, "item": item}))
        events.append((f"response.{final['status']}", {"response": final}))
        return [{"type": name, "sequence_number": n, **data} for n, (name, data) in enumerate(events)]

    # --- embeddings -------------------------------------------------------------------------------------------

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``list`` of embeddings answering ``body``, in its ``encoding_format`` ("float" by default)."""
        given = body.get("input", "")
        if isinstance(given, str) or (isinstance(given, list) and given and isinstance(given[0], int)):
            given = [given]
        dimensions = int(body.get("dimensions") or self.embedding_dimensions)
        data: list[dict[str, Any]] = []
        tokens = 0
        for index, item in enumerate(given):
            text = item if isinstance(item, str) else json.dumps(item)
            tokens += estimate_tokens(item) if isinstance(item, str) else len(item)
            vector = _unit_vector(text, dimensions)
            embedding: list[float] | str = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", "text-embedding-3-small"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _unit_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text``, rounded to float32 so float and base64 answers agree."""
    raw = [b / 127.5 - 1 for b in hashlib.shake_256(text.encode()).digest(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(x / norm for x in raw))))
