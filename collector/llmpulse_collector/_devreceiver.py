"""A minimal OTLP/HTTP receiver that prints a rolling summary of the LLM calls it sees.

It is what ``make run`` shows until the collector proper (ClickHouse, query API,
metrics) lands: it decodes real OTLP (protobuf or JSON) from the real SDK and keeps
counters in memory only. Not for production: nothing is stored.
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["DevReceiver", "Summary"]


class Summary:
    """Counters over every span received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans = 0
        self.llm_calls = 0
        self.refusals = 0
        self.errors = 0
        self.cost_usd = 0.0
        self.latencies: list[float] = []
        self.assertions: Counter[tuple[str, str]] = Counter()
        self.models: Counter[str] = Counter()
        self.feedback = 0

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self._add_span(span)

    def _add_span(self, span: Any) -> None:
        self.spans += 1
        attrs = {kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value") for kv in span.attributes}
        if "gen_ai.operation.name" not in attrs or span.kind != 3:
            return
        self.llm_calls += 1
        self.models[str(attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model"))] += 1
        self.refusals += bool(attrs.get("llmpulse.refusal"))
        self.errors += span.status.code == 2
        self.cost_usd += float(attrs.get("llmpulse.cost.usd", 0.0))
        self.latencies.append((span.end_time_unix_nano - span.start_time_unix_nano) / 1e9)
        for event in span.events:
            if event.name == "gen_ai.evaluation.result":
                ev = {kv.key: kv.value.string_value for kv in event.attributes}
                self.assertions[
                    (ev.get("gen_ai.evaluation.name", "?"), ev.get("gen_ai.evaluation.score.label", "?"))
                ] += 1

    def line(self) -> str:
        with self.lock:
            lat = sorted(self.latencies)
            p50 = lat[len(lat) // 2] if lat else 0.0
            p95 = lat[int(len(lat) * 0.95)] if lat else 0.0
            fails = sum(n for (_, label), n in self.assertions.items() if label != "pass")
            checks = sum(self.assertions.values())
            return (
                f"spans={self.spans} llm_calls={self.llm_calls} errors={self.errors} refusals={self.refusals} "
                f"assertion_failures={fails}/{checks} p50={p50:.3f}s p95={p95:.3f}s cost=${self.cost_usd:.4f} "
                f"feedback={self.feedback}"
            )


class DevReceiver:
    """``POST /v1/traces`` (protobuf or JSON, gzip) and ``/v1/feedback`` on a local port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4318) -> None:
        self.summary = Summary()
        summary = self.summary

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, message: str = "") -> None:
                body = message.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    if self.path == "/v1/feedback":
                        orjson.loads(body)
                        with summary.lock:
                            summary.feedback += 1
                    elif self.path == "/v1/traces":
                        request = ExportTraceServiceRequest()
                        if self.headers.get("Content-Type", "").startswith("application/json"):
                            json_format.Parse(body, request, ignore_unknown_fields=True)
                        else:
                            request.ParseFromString(body)
                        summary.add(request)
                    else:
                        self._answer(404, "unknown path")
                        return
                except Exception as exc:
                    self._answer(400, f"could not decode the request: {exc}")
                    return
                self._answer(200)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="llmpulse-devreceiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
