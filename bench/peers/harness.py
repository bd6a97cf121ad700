"""One peer's measurement, run inside that peer's venv by ``run.py``.

Usage: python bench/peers/harness.py PEER --endpoint URL --calls N --rounds R --out PATH

The workload is ``sdk_overhead.py``'s (same system prompt, user message, reply, token usage
and model, content capture on). Three things run in this one process, so machine noise hits
them alike:

- ``bare``: the same function with no instrumentation (for the ``openai``-client peers, the
  real client call through an in-process ``httpx.MockTransport``; its cost is subtracted);
- ``peer``: the function as the peer's user instruments it;
- ``otel``: issue #8's baseline (paired with a function returning the canned response),
  ``sdk_overhead.make_otel``: a bare OTel SDK span with the
  same GenAI attributes and content, ``BatchSpanProcessor`` + the official OTLP/HTTP
  exporter, to the same sink (under ``/baseline`` so its spans are counted apart).

Each measurement (``interleaved``) calls the uninstrumented and the instrumented function in
turn and times each call: call-path wall µs per call over the bare call, and all-in CPU µs
per call (this thread's CPU over the bare call, plus every other thread's CPU and the flush,
so background export is counted). The sink's counters before and after prove the peer
exported every call.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from sdk_overhead import REPLY, SYSTEM_PROMPT, USER_MESSAGE, make_otel, response  # noqa: E402

__all__ = [
    "MESSAGES",
    "MODEL",
    "REPLY",
    "SYSTEM_PROMPT",
    "USAGE",
    "USER_MESSAGE",
    "Peer",
    "fake_openai_client",
    "response",
]

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_MESSAGE}]
USAGE = {"input_tokens": 560, "output_tokens": 240, "total_tokens": 800, "cache_read_input_tokens": 512}


@dataclass
class Peer:
    """What a peer module's ``setup(endpoint)`` returns."""

    version: str
    how: str  # one line: what the user code looks like
    call: Callable[[], Any]
    bare: Callable[[], Any]
    flush: Callable[[], None]
    shutdown: Callable[[], None]
    paths: tuple[str, ...]  # sink paths whose span counts must cover every call
    extra_paths: tuple[str, ...] = field(default=())  # also counted and reported (APM traces, logs)


def fake_openai_client() -> Any:
    """A real ``openai.OpenAI`` whose HTTP goes to an in-process mock returning the canned reply."""
    import httpx
    import openai

    body = response().model_dump_json().encode()
    headers = {"content-type": "application/json"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers=headers)

    return openai.OpenAI(
        api_key="sk-bench",
        base_url="http://llm.invalid/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def openai_calls() -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(bare, call)`` on a :func:`fake_openai_client`: ``bare`` runs ``create`` as it is
    now, ``call`` as the client runs it later. Call this before the peer patches the
    client, so ``bare`` stays uninstrumented."""
    from openai.resources.chat.completions import Completions

    original = Completions.create
    client = fake_openai_client()

    def bare() -> Any:
        return original(client.chat.completions, model=MODEL, messages=MESSAGES)

    def call() -> Any:
        return client.chat.completions.create(model=MODEL, messages=MESSAGES)

    return bare, call


def interleaved(
    bare: Callable[[], Any], call: Callable[[], Any], flush: Callable[[], None], n: int
) -> dict[str, float]:
    """Per-call overhead of ``call`` over ``bare``, the two called in turn, n times each.

    Each call is timed on its own (wall and this thread's CPU), so a change in the machine's
    speed hits both sides of a pair alike. All-in CPU adds what the other threads spent
    (the peer's exporter) and the final flush: the process's CPU over the block minus this
    thread's, so background export done during the bare calls is counted too.
    """
    flush()
    perf, thread = time.perf_counter, time.thread_time
    wall_bare = wall_call = cpu_bare = cpu_call = 0.0
    p0, m0 = time.process_time(), thread()
    for i in range(n):
        first, second = (bare, call) if i % 2 else (call, bare)  # neither side always goes first
        w0, c0 = perf(), thread()
        first()
        w1, c1 = perf(), thread()
        second()
        w2, c2 = perf(), thread()
        if i % 2:
            wall_bare += w1 - w0
            wall_call += w2 - w1
            cpu_bare += c1 - c0
            cpu_call += c2 - c1
        else:
            wall_call += w1 - w0
            wall_bare += w2 - w1
            cpu_call += c1 - c0
            cpu_bare += c2 - c1
    f0 = thread()
    flush()
    f1 = thread()
    p1, m1 = time.process_time(), thread()
    background = (p1 - p0) - (m1 - m0)
    return {
        "path": (wall_call - wall_bare) / n * 1e6,
        "cpu": (cpu_call - cpu_bare + (f1 - f0) + background) / n * 1e6,
        "bare_path": wall_bare / n * 1e6,
        "bare_cpu": cpu_bare / n * 1e6,
        "background_cpu": background / n * 1e6,
    }


def sink_stats(endpoint: str) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(endpoint + "/_stats", timeout=10) as r:
        stats: dict[str, dict[str, int]] = json.loads(r.read())
        return stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("peer")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    before = sink_stats(args.endpoint)
    peer: Peer = importlib.import_module(f"peer_{args.peer}").setup(args.endpoint)
    base = make_otel(args.endpoint + "/baseline")
    resp = response()
    sides = {"peer": (peer.bare, peer.call, peer.flush), "otel": (lambda: resp, base[0], base[1])}
    rounds: list[dict[str, dict[str, float]]] = []
    for i in range(args.rounds + 1):  # round 0 warms up (imports, caches, connections, lazy init); not kept
        result = {}
        for name in ("peer", "otel") if i % 2 else ("otel", "peer"):
            result[name] = interleaved(*sides[name], args.calls)
        if i:
            rounds.append(result)
    peer_calls = args.calls * (args.rounds + 1)
    peer.flush()
    peer.shutdown()
    base[2]()
    after = sink_stats(args.endpoint)

    def delta(path: str) -> dict[str, int]:
        b = before.get(path, {})
        return {k: v - b.get(k, 0) for k, v in after.get(path, {"requests": 0, "spans": 0, "bytes": 0}).items()}

    exported = {p: delta(p) for p in sorted(set(after) - {"/info", "/_stats"}) if delta(p).get("requests")}
    spans = sum(exported.get(p, {}).get("spans", 0) for p in peer.paths)
    if spans < peer_calls:
        sys.exit(
            f"{args.peer}: the sink received {spans} spans on {', '.join(peer.paths)} for {peer_calls} calls: "
            "the peer dropped or did not export them, so its figures would be understated"
        )
    out = {
        "peer": args.peer,
        "version": peer.version,
        "how": peer.how,
        "python": sys.version.split()[0],
        "calls": args.calls,
        "peer_calls": peer_calls,
        "rounds": rounds,
        "paths": list(peer.paths),
        "spans_per_call": spans / peer_calls,
        "exported": exported,
    }
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
