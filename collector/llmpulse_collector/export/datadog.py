"""Datadog export over DogStatsD (``datadog.DogStatsd``): the same aggregates as ``/metrics``.

Off unless ``DD_AGENT_HOST`` or ``DD_DOGSTATSD_URL`` is set (the standard variables, read by
the ``datadog`` package itself, as are ``DD_DOGSTATSD_PORT``, ``DD_ENV``, ``DD_SERVICE`` and
``DD_VERSION``). Nothing is sent from the ingest path: ingest hands histogram observations
to :meth:`DatadogExporter.add_samples` (a dict append under a lock) and one background
thread, every ``flush_interval`` seconds,

- sends each counter's increase since the last flush as a DogStatsD count, computed from
  the :class:`~.aggregate.Aggregator` snapshot that ``/metrics`` also reads: same label
  sets, same series cap, same sample weights, exact;
- sends each observation as a distribution value; a sample-weighted observation (weight
  ``w``) carries the sample rate ``1/w`` so the agent counts it ``w`` times. Past
  ``max_samples`` observations per metric and tag set in one interval a uniform reservoir
  keeps ``max_samples`` of them, each sent with the rate that keeps the total count exact
  (what DogStatsD clients do with ``max_metric_samples_per_context``); those skipped are
  counted as ``samples_dropped{exporter="datadog",reason="downsampled"}``;
- sends the collector's own health counters and gauges under ``llmpulse.collector.*``.

Tags: the allow-listed labels as ``name:value`` (``model:gpt-4o``, ``prompt_version:ab12cd``),
with ``environment`` spelled ``env`` and ``service`` the *application's* service, Datadog's
unified service tags, so LLM metrics line up with the app's APM data. The ``datadog``
package turns ``DD_ENV``/``DD_SERVICE``/``DD_VERSION`` into constant tags on every metric;
here they describe the collector, so they are moved to the collector's own health metrics
(a second ``service`` tag on LLM metrics would double-count every ``by {service}`` query).
``DD_ENV`` is still the ``env`` of spans that carry no environment.

Failures never reach ingest: a failed send is counted (``exporter_errors{exporter="datadog"}``)
and the next flush goes on. :meth:`DatadogExporter.stop` flushes once more and closes the socket.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from .aggregate import LABELS, TOKEN_TYPES, Aggregator, Sample, Snapshot
from .health import COUNTERS, Health
from .prometheus import WalGauges

__all__ = ["DD_TAG_NAMES", "DISTRIBUTIONS", "DatadogExporter", "datadog_configured"]

log = structlog.get_logger("llmpulse.collector")

# Datadog tag names for LABELS, in the same order.
DD_TAG_NAMES = tuple("env" if name == "environment" else name for name in LABELS)

# Sample.metric -> (DogStatsD distribution name, extra tags)
DISTRIBUTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "duration": ("gen_ai.client.operation.duration", ()),
    "ttfc": ("gen_ai.client.operation.time_to_first_chunk", ()),
    "tokens_input": ("gen_ai.client.token.usage", ("gen_ai_token_type:input",)),
    "tokens_output": ("gen_ai.client.token.usage", ("gen_ai_token_type:output",)),
    "feedback_value": ("llmpulse.feedback.value", ()),
}


def datadog_configured(environ: dict[str, str] | None = None) -> bool:
    """Whether the standard variables ask for DogStatsD (``DD_AGENT_HOST`` or ``DD_DOGSTATSD_URL``)."""
    env = os.environ if environ is None else environ
    return bool(env.get("DD_AGENT_HOST") or env.get("DD_DOGSTATSD_URL"))


class _Reservoir:
    __slots__ = ("kept", "seen", "weight")

    def __init__(self) -> None:
        self.kept: list[tuple[float, float]] = []  # (value, weight)
        self.seen = 0
        self.weight = 0.0


class DatadogExporter:
    """Flushes the aggregates to DogStatsD from one daemon thread. See the module doc."""

    def __init__(
        self,
        aggregator: Aggregator,
        health: Health,
        statsd: Any,
        *,
        flush_interval: float = 10.0,
        max_samples: int = 1000,
        wal: Callable[[], WalGauges] | None = None,
        default_env: str = "",
    ) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive seconds, got {flush_interval!r}")
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples!r}")
        self._aggregator = aggregator
        self._health = health
        self._statsd = statsd
        self._interval = flush_interval
        self._max_samples = max_samples
        self._wal = wal
        self._default_env = default_env
        # DD_ENV / DD_SERVICE / DD_VERSION (and DATADOG_TAGS) describe the collector: keep them
        # for its health metrics only; LLM metrics carry the application's own service and env.
        constant = list(statsd.constant_tags)
        self._collector_tags = [t for t in constant if t.split(":", 1)[0] in ("env", "service", "version")]
        statsd.constant_tags = [t for t in constant if t not in self._collector_tags]
        self._lock = threading.Lock()  # guards _pending
        self._pending: dict[tuple[str, str, tuple[str, ...]], _Reservoir] = {}  # (project, metric, dims)
        self._flush_lock = threading.Lock()  # one flush at a time (thread, stop)
        self._last: dict[tuple[str, tuple[str, ...]], float] = {}
        self._tags: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        self._dropped_seen = 0
        self._last_warning = -60.0
        self._agent = statsd.socket_path or f"{statsd.host}:{statsd.port}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.flushes = 0

    @classmethod
    def from_environment(
        cls,
        aggregator: Aggregator,
        health: Health,
        *,
        prefix: str | None = None,
        tags: Sequence[str] = (),
        flush_interval: float = 10.0,
        max_samples: int = 1000,
        wal: Callable[[], WalGauges] | None = None,
    ) -> DatadogExporter | None:
        """An exporter on a ``DogStatsd`` built from the standard ``DD_*`` variables, or None when unset."""
        if not datadog_configured():
            return None
        from datadog.dogstatsd.base import DogStatsd

        # The package logs a warning per failed packet; the exporter counts them and logs once a minute.
        logging.getLogger("datadog.dogstatsd").setLevel(logging.ERROR)
        statsd = DogStatsd(
            namespace=prefix or None,
            constant_tags=list(tags),
            disable_buffering=False,  # pack many metrics per datagram; flushed at the end of each cycle
            disable_telemetry=False,  # keeps the drop counters we read
            origin_detection_enabled=False,
        )
        return cls(
            aggregator,
            health,
            statsd,
            flush_interval=flush_interval,
            max_samples=max_samples,
            wal=wal,
            default_env=os.environ.get("DD_ENV", ""),
        )

    # -- ingest side -------------------------------------------------------------------------

    def add_samples(self, samples: list[Sample]) -> None:
        """Take a request's histogram observations (never blocks on the network, never raises)."""
        cap = self._max_samples
        downsampled = 0
        with self._lock:
            pending = self._pending
            for s in samples:
                key = (s.project, s.metric, s.dims)
                res = pending.get(key)
                if res is None:
                    res = pending[key] = _Reservoir()
                res.seen += 1
                res.weight += s.weight
                if len(res.kept) < cap:
                    res.kept.append((s.value, s.weight))
                else:
                    downsampled += 1
                    j = random.randrange(res.seen)
                    if j < cap:
                        res.kept[j] = (s.value, s.weight)
        if downsampled:
            self._health.inc("samples_dropped", "datadog", "downsampled", n=downsampled)

    # -- the background side -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="llmpulse-datadog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread, flush what is left, close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()
        try:
            self._statsd.close_socket()
        except Exception:  # closing is best effort
            log.warning("datadog_close_failed", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> bool:
        """Send everything due now. False (and counted) if anything failed; never raises."""
        with self._flush_lock:
            try:
                self._send_all()
                ok = self._statsd.flush() is not False
            except Exception:
                log.warning("datadog_flush_failed", exc_info=True)
                ok = False
            dropped = self._statsd.packets_dropped
            errors = dropped - self._dropped_seen
            self._dropped_seen = dropped
            failed = errors > 0 or not ok
            if failed:
                self._health.inc("exporter_errors", "datadog", n=max(errors, 1))
                now = time.monotonic()
                if now - self._last_warning >= 60.0:  # one line a minute while the agent is unreachable
                    self._last_warning = now
                    log.warning("datadog_send_failed", packets_dropped=max(errors, 1), agent=self._agent)
            self.flushes += 1
            return not failed

    def _send_all(self) -> None:
        statsd = self._statsd
        counters = [c for p in self._aggregator.projects() for c in self._counters(p, self._aggregator.snapshot(p))]
        counters.extend(self._health_counters())
        for name, tags, total in counters:
            key = (name, tuple(tags))
            delta = total - self._last.get(key, 0.0)
            if delta > 0:
                statsd.count(name, delta, tags=tags)
                self._last[key] = total
        with self._lock:
            pending, self._pending = self._pending, {}
        for (project, metric, dims), res in pending.items():
            name, extra = DISTRIBUTIONS[metric]
            base = [*_tag("project", project), *_tag("name", dims[0])] if metric == "feedback_value" else None
            if base is None:
                base = self._dims_tags(project, dims)
            tags = [*base, *extra]
            exact = res.seen <= len(res.kept)
            for value, weight in res.kept:
                rate = 1.0 / weight if exact else len(res.kept) / res.weight
                if rate >= 1.0:
                    statsd.distribution(name, value, tags=tags)
                else:
                    # Already sampled upstream: DogStatsd's public methods would sample again at
                    # random, so this goes through its reporting path with sampling off (datadog
                    # is pinned; tests read the datagrams).
                    statsd._report(name, "d", value, tags, rate, 0, False)
        for name, value in self._gauges():
            statsd.gauge(name, value, tags=self._collector_tags)

    def _dims_tags(self, project: str, dims: tuple[str, ...]) -> list[str]:
        tags = self._tags.get((project, dims))
        if tags is None:
            tags = _tag("project", project)
            for tag_name, value in zip(DD_TAG_NAMES, dims, strict=True):
                tags.extend(_tag(tag_name, value or (self._default_env if tag_name == "env" else "")))
            self._tags[(project, dims)] = tags
        return tags

    def _counters(self, project: str, snap: Snapshot) -> list[tuple[str, list[str], float]]:
        out: list[tuple[str, list[str], float]] = []
        for dims, s in snap.llm.items():
            tags = self._dims_tags(project, dims)
            out.append(("llmpulse.llm.calls", [*tags, "status:ok"], s.calls_ok))
            out.append(("llmpulse.llm.calls", [*tags, "status:error"], s.calls_error))
            for kind, n in zip(TOKEN_TYPES, s.tokens, strict=True):
                out.append(("llmpulse.tokens", [*tags, f"type:{kind}"], n))
            out.append(("llmpulse.cost.usd", tags, s.cost_usd))
        for (dims, source, category), n in snap.refusals.items():
            tags = [*self._dims_tags(project, dims), *_tag("source", source), *_tag("category", category)]
            out.append(("llmpulse.refusals", tags, n))
        for (dims, assertion), counts in snap.assertions.items():
            tags = [*self._dims_tags(project, dims), *_tag("assertion", assertion)]
            for result, n in zip(("pass", "fail", "error"), counts, strict=True):
                out.append(("llmpulse.assertion.results", [*tags, f"result:{result}"], n))
        for name, (count, _) in snap.feedback.items():
            out.append(("llmpulse.feedback", [*_tag("project", project), *_tag("name", name)], count))
        for family, n in snap.folded.items():
            tags = [*self._collector_tags, *_tag("project", project), f"family:{family}"]
            out.append(("llmpulse.collector.series_folded", tags, n))
        return out

    def _health_counters(self) -> list[tuple[str, list[str], float]]:
        out: list[tuple[str, list[str], float]] = []
        health = self._health.snapshot()
        for counter, (label_names, _) in COUNTERS.items():
            name = "llmpulse.collector." + counter.replace("_", ".")
            for values, n in health.counters[counter].items():
                tags = [*self._collector_tags]
                for label, value in zip(label_names, values, strict=True):
                    tags.extend(_tag(label, value))
                out.append((name, tags, n))
        return out

    def _gauges(self) -> list[tuple[str, float]]:
        if self._wal is None:
            return []
        wal = self._wal()
        return [
            ("llmpulse.collector.wal.bytes", wal.bytes_used),
            ("llmpulse.collector.wal.max_bytes", wal.max_bytes),
            ("llmpulse.collector.wal.pending_entries", wal.pending_entries),
            ("llmpulse.collector.wal.oldest_unwritten_age", wal.oldest_age_s),
        ]


def _tag(name: str, value: str) -> list[str]:
    return [f"{name}:{value}"] if value else []
