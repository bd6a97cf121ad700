"""Background export: a bounded queue drained by one daemon thread, OTLP/HTTP out.

Modelled on OpenTelemetry's BatchProcessor: a bounded ``deque`` (the oldest span is
dropped and counted when it is full), one named daemon thread started lazily and again
after ``fork``, ``Event.wait(timeout)`` rather than sleep loops, woken early when a full
batch waits, and ``force_flush``/``shutdown`` with deadlines.

The worker also *finishes* spans: an LLM call is recorded on the app's thread as raw
material (return value, chunks, timings), and extraction, refusal detection, cost,
assertions, redaction and sampling run here, off the call path.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import http.client
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from ._span import SpanRecord
from ._stats import stats

__all__ = ["BatchProcessor", "ExportResult", "Exporter", "HttpExporter"]

log = logging.getLogger("llmpulse")

# Outcomes of one export attempt.
ExportResult = str
SUCCESS: ExportResult = "success"
RETRYABLE: ExportResult = "retryable"
REJECTED: ExportResult = "rejected"


class Exporter(Protocol):
    """Where finished spans and feedback go (the collector over HTTP, or memory in tests)."""

    def export_spans(self, spans: Sequence[SpanRecord], deadline: float) -> bool:
        """Send spans; True when delivered. Must count its own drops in ``stats``."""
        ...

    def export_feedback(self, items: Sequence[dict[str, Any]], deadline: float) -> bool: ...

    def shutdown(self) -> None: ...


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpExporter:
    """OTLP/HTTP to ``{endpoint}/v1/traces`` and JSON to ``{endpoint}/v1/feedback``.

    Retries 429, 5xx and network errors with jittered exponential backoff honouring
    ``Retry-After``, until the batch's deadline; other 4xx answers are final. Uses one
    keep-alive connection from the worker thread (it is the only caller).
    """

    max_backoff = 30.0

    def __init__(
        self,
        traces_url: str,
        feedback_url: str,
        encoder: Any,
        *,
        api_key: str | None,
        timeout: float,
        compress: bool = False,
        max_retry_time: float = 60.0,
    ) -> None:
        self._traces = urlsplit(traces_url)
        self._feedback = urlsplit(feedback_url)
        self._encoder = encoder
        self._timeout = timeout
        self._compress = compress
        self._max_retry_time = max_retry_time
        self._headers = {"User-Agent": "llmpulse-python"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._conn: http.client.HTTPConnection | None = None
        self._closed = threading.Event()

    # -- connection -------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            parts = self._traces
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=self._timeout)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _post_once(self, path: str, body: bytes, content_type: str, timeout: float) -> tuple[int, str | None, bytes]:
        headers = dict(self._headers)
        headers["Content-Type"] = content_type
        if self._compress and len(body) > 1024:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        conn = self._connection()
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            self._drop_connection()
            raise
        if resp.getheader("Connection", "").lower() == "close":
            self._drop_connection()
        return resp.status, resp.getheader("Retry-After"), data

    def _post(self, url: Any, body: bytes, content_type: str, deadline: float, what: str) -> ExportResult:
        """POST with retries until ``deadline``; returns SUCCESS, REJECTED or RETRYABLE (gave up)."""
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        give_up = min(deadline, time.monotonic() + self._max_retry_time)
        attempt = 0
        while True:
            remaining = give_up - time.monotonic()
            if remaining <= 0 or self._closed.is_set():
                return RETRYABLE
            wait: float | None = None
            try:
                status, retry_after, data = self._post_once(path, body, content_type, min(self._timeout, remaining))
            except (OSError, http.client.HTTPException) as exc:
                log.debug("llmpulse export of %s failed: %r", what, exc)
                stats.incr(f"export_errors.{type(exc).__name__}")
            else:
                if 200 <= status < 300:
                    return SUCCESS
                if status == 429 or status >= 500:
                    stats.incr(f"export_errors.http_{status}")
                    wait = _retry_after(retry_after)
                else:
                    log.warning(
                        "llmpulse collector rejected %s with HTTP %s: %s",
                        what,
                        status,
                        data[:300].decode("utf-8", "replace"),
                    )
                    stats.incr(f"export_errors.http_{status}")
                    return REJECTED
            attempt += 1
            if wait is None:
                wait = min(self.max_backoff, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            wait = min(wait, self.max_backoff)
            if time.monotonic() + wait >= give_up:
                return RETRYABLE
            if self._closed.wait(wait):
                return RETRYABLE

    def export_spans(self, spans: Sequence[SpanRecord], deadline: float) -> bool:
        try:
            body = self._encoder.encode(spans)
        except Exception:
            log.exception("llmpulse could not encode %d spans", len(spans))
            stats.incr("spans_dropped.encode_error", len(spans))
            return False
        result = self._post(self._traces, body, self._encoder.content_type, deadline, f"{len(spans)} spans")
        if result == SUCCESS:
            stats.incr("spans_exported", len(spans))
            return True
        reason = "rejected" if result == REJECTED else "export_failed"
        stats.incr(f"spans_dropped.{reason}", len(spans))
        return False

    def export_feedback(self, items: Sequence[dict[str, Any]], deadline: float) -> bool:
        ok = True
        for item in items:
            result = self._post(self._feedback, orjson.dumps(item), "application/json", deadline, "feedback")
            if result == SUCCESS:
                stats.incr("feedback_exported")
            else:
                ok = False
                stats.incr("feedback_dropped." + ("rejected" if result == REJECTED else "export_failed"))
        return ok

    def shutdown(self) -> None:
        self._closed.set()
        self._drop_connection()

    def reset_after_fork(self) -> None:
        # The parent's socket must not be shared: the child opens its own.
        self._conn = None


class BatchProcessor:
    """Bounded queue + one worker thread: finish, sample, batch and export spans.

    ``finish(span) -> bool`` runs on the worker for every span and says whether to
    export it (False: sampled out). ``enqueue`` is the only method on the app's hot path.
    """

    def __init__(
        self,
        exporter: Exporter,
        finish: Callable[[SpanRecord], bool],
        *,
        max_queue_size: int = 2048,
        max_batch_size: int = 512,
        interval: float = 1.0,
        export_timeout: float = 10.0,
    ) -> None:
        self._exporter = exporter
        self._finish = finish
        self._max_queue = max_queue_size
        self._max_batch = max_batch_size
        self._interval = interval
        self._export_timeout = export_timeout
        self._init_state()
        weak_reinit = weakref.WeakMethod(self._at_fork_reinit)

        def _after_fork() -> None:
            method = weak_reinit()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=_after_fork)

    def _init_state(self) -> None:
        self._queue: deque[SpanRecord] = deque(maxlen=self._max_queue)
        self._feedback: deque[dict[str, Any]] = deque(maxlen=self._max_queue)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._flush_waiters: list[threading.Event] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._shutdown = False

    def _at_fork_reinit(self) -> None:
        # The child inherits the parent's queue (spans the parent will export) and a
        # dead worker thread: start from an empty queue and a fresh thread.
        self._init_state()
        reset = getattr(self._exporter, "reset_after_fork", None)
        if reset is not None:
            reset()

    # -- app side ---------------------------------------------------------------------
    def enqueue(self, span: SpanRecord) -> None:
        queue = self._queue
        if self._shutdown:
            stats.incr("spans_dropped.shutdown")
            return
        if len(queue) >= self._max_queue:
            stats.incr("spans_dropped.queue_full")
        queue.append(span)
        if self._thread is None:
            self._start()
        if len(queue) >= self._max_batch:
            wake = self._wake
            # Once a full batch waits, every enqueue lands here until the worker catches
            # up; Event.set takes a lock and notifies each time, is_set is one read. The
            # worker clears the event before it drains, so a span appended before this
            # check is drained either way.
            if not wake.is_set():
                wake.set()

    def enqueue_feedback(self, item: dict[str, Any]) -> None:
        if self._shutdown:
            stats.incr("feedback_dropped.shutdown")
            return
        if len(self._feedback) >= self._max_queue:
            stats.incr("feedback_dropped.queue_full")
        self._feedback.append(item)
        if self._thread is None:
            self._start()
        self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._shutdown:
                return
            thread = threading.Thread(target=self._run, name="llmpulse-exporter", daemon=True)
            try:
                thread.start()
            except RuntimeError:
                # Interpreter shutdown: threads can no longer start. Spans stay queued
                # and the exit hook's flush drains them on this thread.
                return
            self._thread = thread

    # -- worker -----------------------------------------------------------------------
    def _run(self) -> None:
        _suppress_instrumentation()
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain(time.monotonic() + self._export_timeout * 6)
            if self._shutdown:
                self._drain(time.monotonic() + self._export_timeout)
                self._notify_flushed()
                return
            self._notify_flushed()

    def _notify_flushed(self) -> None:
        with self._lock:
            waiters, self._flush_waiters = self._flush_waiters, []
        for event in waiters:
            event.set()

    def _drain(self, deadline: float) -> None:
        """Export everything queued now, one batch at a time."""
        while self._feedback:
            items: list[dict[str, Any]] = []
            while self._feedback and len(items) < self._max_batch:
                items.append(self._feedback.popleft())
            self._exporter.export_feedback(items, deadline)
        while self._queue:
            batch: list[SpanRecord] = []
            queue = self._queue
            while queue and len(batch) < self._max_batch:
                try:
                    span = queue.popleft()
                except IndexError:  # pragma: no cover - only if another drainer raced us
                    break
                try:
                    keep = self._finish(span)
                except Exception:
                    log.exception("llmpulse failed to process span %r", span.name)
                    stats.incr("spans_dropped.process_error")
                    continue
                if keep:
                    batch.append(span)
            if batch:
                try:
                    self._exporter.export_spans(batch, deadline)
                except Exception:
                    log.exception("llmpulse exporter failed")
                    stats.incr("spans_dropped.export_failed", len(batch))

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Export everything queued so far; False if ``timeout`` passed first."""
        if timeout <= 0:
            return False
        thread = self._thread
        if thread is None or not thread.is_alive():
            if not self._queue and not self._feedback:
                return True
            if self._shutdown or thread is not None:
                # No worker (it ended or cannot start): drain on the caller's thread.
                self._drain(time.monotonic() + timeout)
                return not self._queue
            self._start()
            if self._thread is None:
                self._drain(time.monotonic() + timeout)
                return not self._queue
        done = threading.Event()
        with self._lock:
            self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush within ``timeout``, stop the worker, close the exporter."""
        if self._shutdown:
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        self._shutdown = True
        thread = self._thread
        flushed = True
        if thread is not None and thread.is_alive():
            self._wake.set()
            thread.join(max(0.0, deadline - time.monotonic()))
            flushed = not thread.is_alive()
        elif self._queue or self._feedback:
            self._drain(deadline)
        left = len(self._queue)
        if left:
            stats.incr("spans_dropped.shutdown", left)
            self._queue.clear()
            flushed = False
        self._exporter.shutdown()
        if thread is not None and thread.is_alive():
            # Closing the exporter interrupts a hanging request or a backoff wait; give
            # the worker a moment to count what it was holding.
            thread.join(1.0)
        return flushed


def _suppress_instrumentation() -> None:
    """Mark the worker thread's context so OTel instrumentations skip our own export."""
    try:
        from opentelemetry import context

        key = getattr(context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation")
        context.attach(context.set_value(key, True))
    except Exception:  # pragma: no cover - the OTel API is a dependency, but never fail here
        log.debug("llmpulse could not set the OTel suppression key", exc_info=True)
