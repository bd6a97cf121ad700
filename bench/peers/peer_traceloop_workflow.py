"""Traceloop with a single ``@workflow`` (one span a call): see ``peer_traceloop.py``."""

from __future__ import annotations

from harness import Peer
from peer_traceloop import setup as _setup


def setup(endpoint: str) -> Peer:
    return _setup(endpoint, nested=False)
