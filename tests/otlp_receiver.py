"""A real OTLP/HTTP receiver on 127.0.0.1 for tests: decodes what the SDK puts on the wire.

Protobuf bodies are decoded with ``opentelemetry-proto``; JSON bodies with protobuf's
JSON parser after turning OTLP/JSON's hex ids into base64 (the one place OTLP/JSON
differs from protobuf's JSON mapping). Answers can be scripted per request (status,
headers, a delay) to play a collector that rejects, throttles or hangs.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to hold the request (bounded by the receiver's stop event)


def _hex_ids_to_base64(obj: Any) -> Any:
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                out[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(obj, list):
        return [_hex_ids_to_base64(v) for v in obj]
    return obj


class Receiver:
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.feedback: list[dict[str, Any]] = []
        self.answers: deque[Answer] = deque()
        self.hits = 0
        self.lock = threading.Lock()
        self.got_request = threading.Condition(self.lock)
        self.stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.hits += 1
                    answer = receiver.answers.popleft() if receiver.answers else Answer()
                if answer.delay:
                    receiver.stop.wait(answer.delay)
                if answer.status == 200:
                    receiver._accept(self.path, dict(self.headers), body)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _accept(self, path: str, headers: dict[str, str], body: bytes) -> None:
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with self.lock:
            self.raw.append((headers, body))
            if path == "/v1/feedback":
                self.feedback.append(json.loads(body))
            else:
                if headers.get("Content-Type") == "application/json":
                    request = ExportTraceServiceRequest()
                    json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request)
                else:
                    request = ExportTraceServiceRequest.FromString(body)
                self.requests.append(request)
            self.got_request.notify_all()

    def spans(self) -> list[Span]:
        with self.lock:
            return [
                span for req in self.requests for rs in req.resource_spans for ss in rs.scope_spans for span in ss.spans
            ]

    def wait_for_spans(self, n: int, timeout: float = 10.0) -> list[Span]:
        with self.got_request:
            self.got_request.wait_for(
                lambda: (
                    sum(len(ss.spans) for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans) >= n
                ),
                timeout,
            )
        return self.spans()

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def attributes(span_or_resource: Any) -> dict[str, Any]:
    """Decoded attribute values of a proto Span, Event or Resource."""
    out: dict[str, Any] = {}
    for kv in span_or_resource.attributes:
        out[kv.key] = any_value(kv.value)
    return out


def any_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def iter_spans(request: ExportTraceServiceRequest) -> Iterator[Span]:
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            yield from ss.spans
