"""API keys: each maps to a project; only a hash of it is stored.

A key reads ``lp_<id>_<secret>``: ``id`` (12 hex characters) finds the record, ``secret`` (43
URL-safe characters, 256 random bits) is checked against its SHA-256 with
``hmac.compare_digest`` (constant time). A fast hash is enough for secrets of that entropy;
a slow password hash would only slow every request. Keys live in SQLite at
``<data_dir>/keys.sqlite3``, written by ``llmpulse keys add|list|revoke`` and read by the
collector, which looks a key up at most once per ``cache_s`` seconds, so a revocation takes
effect within that time without a restart.

Once any key exists (revoked or not: revoking the last key must not open the collector
again), every endpoint but ``/healthz`` requires ``Authorization: Bearer <key>``, and
every row written and every query read is the key's project's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AuthMiddleware", "KeyInfo", "KeyStore", "TokenBucket", "hash_secret", "parse_key"]

_KEY = re.compile(r"^lp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def parse_key(key: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    m = _KEY.match(key)
    return (m[1], m[2]) if m else None


@dataclass(frozen=True)
class KeyInfo:
    id: str
    project: str
    created_at: float
    revoked_at: float | None


class KeyStore:
    """The key table under a data directory. Thread-safe; one short-lived connection per call."""

    def __init__(self, data_dir: Path, cache_s: float = 5.0) -> None:
        self.path = Path(data_dir) / "keys.sqlite3"
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, bytes, str, bool]] = {}  # id -> (read at, hash, project, revoked)
        self._any: tuple[float, bool] | None = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.execute(
            "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, project TEXT NOT NULL, hash BLOB NOT NULL, "
            "created_at REAL NOT NULL, revoked_at REAL)"
        )
        return db

    # -- administration (the `llmpulse keys` command) ------------------------------------------

    def add(self, project: str) -> str:
        """Create a key for ``project`` and return it; only its hash is stored."""
        if not PROJECT.match(project):
            raise ValueError(
                "project must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit; "
                f"got {project!r}"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        db = self._connect()
        try:
            with db:
                db.execute(
                    "INSERT INTO keys (id, project, hash, created_at) VALUES (?, ?, ?, ?)",
                    (key_id, project, hash_secret(secret), time.time()),
                )
        finally:
            db.close()
        os.chmod(self.path, 0o600)  # hashes only, but nobody else's business
        return f"lp_{key_id}_{secret}"

    def list(self) -> list[KeyInfo]:
        if not self.path.exists():
            return []
        db = self._connect()
        try:
            rows = db.execute("SELECT id, project, created_at, revoked_at FROM keys ORDER BY created_at").fetchall()
        finally:
            db.close()
        return [KeyInfo(*row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke by id (the 12 hex characters after ``lp_``, or the whole key). False if unknown."""
        parsed = parse_key(key_id)
        if parsed is not None:
            key_id = parsed[0]
        if not self.path.exists():
            return False
        db = self._connect()
        try:
            with db:
                changed = db.execute(
                    "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key_id)
                ).rowcount
        finally:
            db.close()
        with self._lock:
            self._cache.pop(key_id, None)
        return changed > 0

    # -- the collector's side ------------------------------------------------------------------

    def any_keys(self) -> bool:
        """Whether auth is on: any key was ever created (cached for ``cache_s``)."""
        now = time.monotonic()
        with self._lock:
            if self._any is not None and (self._any[1] or now - self._any[0] < self.cache_s):
                return self._any[1]  # once on, it stays on
        found = False
        if self.path.exists():
            db = self._connect()
            try:
                found = db.execute("SELECT 1 FROM keys LIMIT 1").fetchone() is not None
            finally:
                db.close()
        with self._lock:
            self._any = (now, found)
        return found

    def project_of(self, key: str) -> str | None:
        """The project of a valid, unrevoked key; None otherwise."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is None or now - cached[0] >= self.cache_s:
            db = self._connect()
            try:
                row = db.execute("SELECT hash, project, revoked_at FROM keys WHERE id = ?", (key_id,)).fetchone()
            finally:
                db.close()
            # An unknown id is cached too (with a hash nothing matches), so guessing ids costs no queries.
            cached = (now, row[0], row[1], row[2] is not None) if row else (now, b"", "", True)
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key_id] = cached
        _, stored, project, revoked = cached
        ok = hmac.compare_digest(hash_secret(secret), stored or b"\0" * 32)
        return project if ok and not revoked else None


class TokenBucket:
    """Per-key request rate limit: ``rate`` requests a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, who: str) -> float:
        """0.0 when the request may go ahead, else the seconds until one token is back."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[who] = (tokens - 1.0, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1.0 - tokens) / self.rate


class AuthMiddleware:
    """Pure ASGI middleware: puts the request's project in ``scope["state"]["project"]``.

    Without keys every request gets ``default_project``. With keys, everything but
    ``/healthz`` needs ``Authorization: Bearer <key>``: 401 without a valid one, 429 with
    ``Retry-After`` past the key's rate. The key itself is never logged.
    """

    def __init__(self, app: Any, keys: KeyStore, default_project: str, limit: TokenBucket | None) -> None:
        self.app = app
        self.keys = keys
        self.default_project = default_project
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.keys.any_keys():
            state["project"] = self.default_project
            await self.app(scope, receive, send)
            return
        token = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                token = rest.strip() if scheme.lower() == "bearer" else ""
                break
        if not token:
            await _deny(send, 401, "this collector requires an API key: send Authorization: Bearer <key>")
            return
        project = self.keys.project_of(token)
        if project is None:
            await _deny(send, 401, "invalid or revoked API key")
            return
        if self.limit is not None:
            wait = self.limit.take(token[:15])  # the key id part; never the secret
            if wait > 0:
                await _deny(
                    send, 429, "rate limit of this API key exceeded; retry later", {"retry-after": str(math.ceil(wait))}
                )
                return
        state["project"] = project
        await self.app(scope, receive, send)


async def _deny(send: Any, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        raw.append((b"www-authenticate", b'Bearer realm="llmpulse"'))
    raw.extend((k.encode(), v.encode()) for k, v in (headers or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
