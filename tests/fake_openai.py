"""A small fake of OpenAI's HTTP API on 127.0.0.1, for the real ``openai`` client library.

Answers ``POST /v1/chat/completions`` (plain and SSE streaming, with the usage chunk when
``stream_options.include_usage`` is set). ``reply`` sets the assistant text; a reply of
``None`` with ``refusal`` set returns a refusal message.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, reply: str = "sure, happy to help!", model: str = "gpt-4o-mini-2024-07-18") -> None:
        self.reply = reply
        self.refusal: str | None = None
        self.model = model
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                fake.requests.append(body)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._json(404, {"error": {"message": f"unknown path {self.path}", "type": "invalid_request"}})
                    return
                if body.get("stream"):
                    self._stream(body)
                else:
                    self._json(200, fake.completion(body))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in fake.chunks(body):
                    data = f"data: {json.dumps(chunk)}\n\n".encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                done = b"data: [DONE]\n\n"
                self.wfile.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def _usage(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = sum(len(str(m.get("content", ""))) // 4 + 1 for m in body.get("messages", []))
        completion = len(self.reply or "") // 4 + 1
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.reply, "refusal": self.refusal}
        if self.refusal:
            message["content"] = None
        return {
            "id": "chatcmpl-fake1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": message, "logprobs": None}],
            "usage": self._usage(body),
        }

    def chunks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        base = {
            "id": "chatcmpl-fake2",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }
        out = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        ]
        for word in (self.reply or "").split(" "):
            out.append({**base, "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]})
        out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            out.append({**base, "choices": [], "usage": self._usage(body)})
        return out

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
