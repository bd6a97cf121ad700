"""What really goes over the wire, decoded by a real OTLP/HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from responses import openai_completion

import llmpulse
from llmpulse import check
from otlp_receiver import Answer, Receiver, any_value, attributes

ROOT = Path(__file__).resolve().parents[2]


@llmpulse.llm(provider="openai", model="gpt-4o-mini", assertions=[check.starts_lowercase()])
def reply(question: str) -> dict[str, Any]:
    return openai_completion("sure! here you go." if question != "upper" else "Sure.")


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_spans_reach_a_real_otlp_receiver(receiver: Receiver, protocol: str) -> None:
    llmpulse.init(
        service="support-bot",
        endpoint=receiver.endpoint,
        environment="prod",
        release="1.2.3",
        api_key="lp_test_key",
        protocol=protocol,
    )

    @llmpulse.observe(name="handle")
    def handle() -> None:
        reply("hi")
        reply("upper")

    handle()
    assert llmpulse.flush(10)
    spans = receiver.wait_for_spans(3)
    headers, _ = receiver.raw[0]
    assert headers["Authorization"] == "Bearer lp_test_key"
    assert "Content-Encoding" not in headers  # OTel's default: no compression unless asked
    assert headers["Content-Type"] == ("application/json" if protocol == "http/json" else "application/x-protobuf")
    request = receiver.requests[0]
    resource = attributes(request.resource_spans[0].resource)
    assert resource["service.name"] == "support-bot"
    assert resource["deployment.environment.name"] == "prod"
    assert resource["service.version"] == "1.2.3"
    assert request.resource_spans[0].scope_spans[0].scope.name == "llmpulse"
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    (root,) = by_name["handle"]
    ok, bad = by_name["chat gpt-4o-mini"]
    assert ok.parent_span_id == root.span_id
    assert ok.trace_id == root.trace_id
    assert len(ok.trace_id) == 16
    assert ok.kind == 3  # SPAN_KIND_CLIENT
    attrs = attributes(ok)
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.input_tokens"] == 1200
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["llmpulse.refusal"] is False
    assert attrs["llmpulse.cost.usd"] > 0
    assert "gen_ai.input.messages" in attrs

    def evaluation(span: Any) -> dict[str, Any]:
        (event,) = [e for e in span.events if e.name == "gen_ai.evaluation.result"]
        return {kv.key: any_value(kv.value) for kv in event.attributes}

    assert evaluation(ok)["gen_ai.evaluation.score.label"] == "pass"
    assert evaluation(bad)["gen_ai.evaluation.score.label"] == "fail"
    assert evaluation(bad)["gen_ai.evaluation.score.value"] == 0.0
    assert evaluation(bad)["gen_ai.evaluation.name"] == "starts_lowercase"
    assert llmpulse.sdk_stats()["spans_exported"] == 3


def test_feedback_is_posted_as_json(receiver: Receiver) -> None:
    llmpulse.init(service="svc", endpoint=receiver.endpoint)
    with llmpulse.span("request"):
        trace_id = llmpulse.current_trace_id()
    assert trace_id is not None
    llmpulse.feedback(trace_id, "thumbs_up", True, comment="great")
    llmpulse.feedback("chatcmpl-abc", "rating", 4)
    assert llmpulse.flush(10)
    first, second = receiver.feedback
    assert first["trace_id"] == trace_id
    assert first["value"] == 1.0
    assert first["comment"] == "great"
    assert second["response_id"] == "chatcmpl-abc"
    assert second["value"] == 4.0


@pytest.mark.parametrize("bad", [("", "n", 1), ("t" * 32, "", 1), ("t", "n", float("nan")), ("t", "n", "5")])
def test_feedback_rejects_bad_arguments(bad: tuple[Any, Any, Any]) -> None:
    with pytest.raises(ValueError, match="feedback"):
        llmpulse.feedback(*bad)


def test_retry_after_is_honoured_on_503_and_429(receiver: Receiver) -> None:
    receiver.answers.extend([Answer(503, {"Retry-After": "1"}), Answer(429, {"Retry-After": "1"})])
    llmpulse.init(service="svc", endpoint=receiver.endpoint)
    reply("hi")
    started = time.monotonic()
    assert llmpulse.flush(15)
    waited = time.monotonic() - started
    assert len(receiver.spans()) == 1
    assert receiver.hits == 3
    assert waited >= 1.9  # two Retry-After: 1 answers were waited out, not hammered
    stats = llmpulse.sdk_stats()
    assert stats["export_errors.http_503"] == 1
    assert stats["export_errors.http_429"] == 1
    assert stats["spans_exported"] == 1


def test_400_is_final_and_counted(receiver: Receiver) -> None:
    receiver.answers.append(Answer(400))
    llmpulse.init(service="svc", endpoint=receiver.endpoint)
    reply("hi")
    reply("hi")
    assert llmpulse.flush(10)
    assert receiver.hits == 1  # no retry of a rejected batch
    assert llmpulse.sdk_stats()["spans_dropped.rejected"] == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_collector_down_never_blocks_or_breaks_the_app() -> None:
    llmpulse.init(service="svc", endpoint=f"http://127.0.0.1:{_closed_port()}", export_interval=0.05)
    for _ in range(50):
        assert reply("hi")["id"] == "chatcmpl-abc123"
    llmpulse.shutdown(1.0)
    stats = llmpulse.sdk_stats()
    assert stats.get("export_errors.ConnectionRefusedError", 0) >= 1
    dropped = sum(v for k, v in stats.items() if k.startswith("spans_dropped."))
    assert dropped == 50  # every span is accounted for, none exported
    assert stats.get("spans_exported", 0) == 0


def test_hanging_collector_does_not_slow_calls_and_queue_stays_bounded(receiver: Receiver) -> None:
    receiver.answers.append(Answer(200, delay=30))  # holds the first export until the test ends
    llmpulse.init(
        service="svc",
        endpoint=receiver.endpoint,
        max_queue_size=20,
        max_export_batch_size=5,
        export_interval=0.05,
        export_timeout=30,
    )
    reply("hi")
    deadline = time.monotonic() + 10
    while receiver.hits == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.hits == 1  # the worker is now stuck in the hanging request
    for _ in range(200):
        reply("hi")
    # All 200 calls returned while the exporter was still blocked.
    assert receiver.hits == 1
    assert not receiver.spans()
    stats = llmpulse.sdk_stats()
    assert stats["spans_dropped.queue_full"] >= 200 - 20
    receiver.stop.set()  # release the hanging request
    llmpulse.shutdown(5)


def test_spans_queued_at_exit_are_flushed_by_the_exit_hook(receiver: Receiver, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(f"""
        import llmpulse
        llmpulse.init(service="exiting", endpoint="{receiver.endpoint}", export_interval=60)

        @llmpulse.llm(provider="openai", model="gpt-4o-mini")
        def call():
            return {{"model": "gpt-4o-mini", "choices": [{{"message": {{"content": "bye"}}}}]}}

        call()
        # no flush, no shutdown: the exit hook must deliver
    """)
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    spans = receiver.wait_for_spans(1)
    assert [s.name for s in spans] == ["chat gpt-4o-mini"]
    assert attributes(receiver.requests[0].resource_spans[0].resource)["service.name"] == "exiting"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_forked_worker_keeps_exporting(receiver: Receiver) -> None:
    llmpulse.init(service="prefork", endpoint=receiver.endpoint, export_interval=0.05)
    reply("parent-before")
    assert llmpulse.flush(10)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_fd)

            @llmpulse.llm(provider="openai", model="child-model")
            def child_call() -> dict[str, Any]:
                return openai_completion(model="child-model")

            child_call()
            ok = llmpulse.flush(10)
            os.write(write_fd, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    assert os.read(read_fd, 1) == b"1"
    os.close(read_fd)
    assert os.waitstatus_to_exitcode(status) == 0
    reply("parent-after")
    assert llmpulse.flush(10)
    names = sorted(s.name for s in receiver.wait_for_spans(3))
    # the parent's first span is exported once (the child did not re-send the parent's queue)
    assert names == ["chat child-model", "chat gpt-4o-mini", "chat gpt-4o-mini"]


def test_gzip_compression_when_asked(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    llmpulse.init(service="svc", endpoint=receiver.endpoint)
    for _ in range(20):
        reply("hi")
    assert llmpulse.flush(10)
    headers, body = receiver.raw[0]
    assert headers.get("Content-Encoding") == "gzip"
    assert len(body) > 1024


def test_many_threads_record_every_call(receiver: Receiver) -> None:
    llmpulse.init(service="svc", endpoint=receiver.endpoint, export_interval=0.05)

    def work() -> None:
        for _ in range(100):
            reply("hi")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert llmpulse.flush(20)
    assert len(receiver.wait_for_spans(800)) == 800
