"""The peers benchmark's sink: an OTLP/HTTP receiver and a fake Datadog agent, in its own process.

Run as ``python bench/peers/sink.py PORTFILE``; it writes its port to PORTFILE. Like
``bench/sink.py`` it answers every export with a success, in another process so its CPU
stays out of the measured process's ``process_time``. It also counts what it received, per
path, so a harness can prove a peer really exported (``GET /_stats``):

- OTLP/HTTP (``POST .../v1/traces``, protobuf or JSON, gzip or not): spans in the request.
- Datadog agent: ``GET /info`` lists the endpoints ddtrace looks for; ``PUT|POST
  /v0.4|v0.5/traces`` count traces from ``X-Datadog-Trace-Count`` (the payload is msgpack);
  ``POST /evp_proxy/v2/api/v2/llmobs`` counts LLM Observability span events (JSON);
  telemetry and anything else is accepted and counted as requests.

With ``PEERS_SINK_DUMP=DIR`` it also writes the first body received on each path
(decompressed) to DIR, to check by eye what a peer really sends.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
import zlib
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

AGENT_INFO = {
    "version": "7.60.0",
    "endpoints": [
        "/v0.4/traces",
        "/v0.5/traces",
        "/v0.7/traces",
        "/v0.6/stats",
        "/evp_proxy/v2/",
        "/evp_proxy/v3/",
        "/evp_proxy/v4/",
        "/telemetry/proxy/",
    ],
    "client_drop_p0s": False,
    "span_meta_structs": True,
    "feature_flags": [],
    "config": {"statsd_port": 8125},
}

_lock = threading.Lock()
_stats: dict[str, dict[str, int]] = defaultdict(lambda: {"requests": 0, "spans": 0, "bytes": 0})


def _count_otlp(body: bytes, content_type: str) -> int:
    if "json" in content_type:
        doc = json.loads(body)
        return sum(len(ss.get("spans", [])) for rs in doc.get("resourceSpans", []) for ss in rs.get("scopeSpans", []))
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)


def _count_llmobs(body: bytes) -> int:
    doc = json.loads(body)
    events = doc if isinstance(doc, list) else [doc]
    n = 0
    for event in events:
        spans = event.get("spans") if isinstance(event, dict) else None
        n += len(spans) if isinstance(spans, list) else 1
    return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/info":
            self._reply(200, json.dumps(AGENT_INFO).encode())
        elif self.path == "/_stats":
            with _lock:
                self._reply(200, json.dumps(_stats).encode())
        else:
            self._reply(404)

    def _receive(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "").lower()
        body = gzip.decompress(raw) if encoding == "gzip" else zlib.decompress(raw) if encoding == "deflate" else raw
        path = self.path.split("?", 1)[0]
        spans = 0
        reply = b"{}"
        if path.endswith("/v1/traces"):
            spans = _count_otlp(body, self.headers.get("Content-Type", ""))
            reply = b""
        elif path.endswith("/api/v2/llmobs"):
            spans = _count_llmobs(body)
        elif path in ("/v0.4/traces", "/v0.5/traces", "/v0.7/traces"):
            spans = int(self.headers.get("X-Datadog-Trace-Count", "0"))
            reply = b'{"rate_by_service": {"service:,env:": 1}}'
        with _lock:
            s = _stats[path]
            dump = os.environ.get("PEERS_SINK_DUMP")
            if dump and not s["requests"]:
                with open(os.path.join(dump, path.strip("/").replace("/", "_") or "root"), "wb") as f:
                    f.write(body)
            s["requests"] += 1
            s["spans"] += spans
            s["bytes"] += len(raw)
        content_type = "application/x-protobuf" if path.endswith("/v1/traces") else "application/json"
        self._reply(200, reply, content_type)

    do_POST = _receive
    do_PUT = _receive


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
