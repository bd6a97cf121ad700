"""A DogStatsD listener owned by the tests: a real UDP socket on 127.0.0.1 that parses every
datagram (``name:value|type|@rate|#tag,tag``, several lines per datagram) strictly, so a
malformed line fails the test instead of being skipped."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

_LINE = re.compile(r"^(?P<name>[^:|#]+):(?P<value>[^|]+)\|(?P<type>c|g|d|h|ms|s)(?P<rest>(\|[^|]+)*)$")


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    type: str
    rate: float
    tags: tuple[str, ...]

    def tag(self, name: str) -> list[str]:
        return [t.split(":", 1)[1] for t in self.tags if t.split(":", 1)[0] == name]


def parse_line(line: str) -> Metric:
    m = _LINE.match(line)
    if m is None:
        raise ValueError(f"not a DogStatsD metric line: {line!r}")
    rate = 1.0
    tags: tuple[str, ...] = ()
    for part in m["rest"].split("|")[1:]:
        if part.startswith("@"):
            rate = float(part[1:])
            if not 0 < rate <= 1:
                raise ValueError(f"sample rate out of (0, 1]: {line!r}")
        elif part.startswith("#"):
            tags = tuple(part[1:].split(","))
        elif part.startswith(("c:", "T", "e:", "card:")):
            continue
        else:
            raise ValueError(f"unknown field {part!r} in {line!r}")
    return Metric(m["name"], float(m["value"]), m["type"], rate, tags)


class DogStatsdPeer:
    """Collects every metric sent to ``127.0.0.1:<port>`` until closed."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.metrics: list[Metric] = []
        self.errors: list[str] = []
        self.datagrams = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dogstatsd-peer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams += 1
                for line in data.decode("utf-8").split("\n"):
                    if not line:
                        continue
                    try:
                        self.metrics.append(parse_line(line))
                    except ValueError as exc:
                        self.errors.append(str(exc))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def snapshot(self, *, skip_client_telemetry: bool = True) -> list[Metric]:
        with self._lock:
            out = list(self.metrics)
        if skip_client_telemetry:  # the datadog package's own datadog.dogstatsd.client.* counters
            out = [m for m in out if not m.name.startswith("datadog.dogstatsd.")]
        return out

    def counts(self, prefix: str = "") -> dict[tuple[str, frozenset[str]], float]:
        """Sum of every count per (name, tag set), scaled by 1/rate as an agent would."""
        total: dict[tuple[str, frozenset[str]], float] = defaultdict(float)
        for m in self.snapshot():
            if m.type == "c" and m.name.startswith(prefix):
                total[(m.name, frozenset(m.tags))] += m.value / m.rate
        return dict(total)

    def wait(self, predicate: object, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"DogStatsD peer: condition not met in {timeout}s; got {len(self.metrics)} metrics"
                )
            time.sleep(0.05)
