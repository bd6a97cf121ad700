"""SDK configuration: explicit argument, then ``LLMPULSE_*`` environment variable, then default.

Every environment variable the SDK reads is named here, once. A bad value raises
``ConfigError`` at ``init()`` naming the option (and the variable it came from), never
later on a hot path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._exceptions import ConfigError

__all__ = ["ENV", "Config", "build_config", "env_disabled"]


class ENV:
    """Names of the environment variables the SDK reads."""

    DISABLED = "LLMPULSE_DISABLED"
    SERVICE = "LLMPULSE_SERVICE"
    ENDPOINT = "LLMPULSE_ENDPOINT"
    API_KEY = "LLMPULSE_API_KEY"
    ENVIRONMENT = "LLMPULSE_ENVIRONMENT"
    RELEASE = "LLMPULSE_RELEASE"
    CAPTURE_CONTENT = "LLMPULSE_CAPTURE_CONTENT"
    SAMPLE_RATE = "LLMPULSE_SAMPLE_RATE"
    REDACT = "LLMPULSE_REDACT"
    PROTOCOL = "LLMPULSE_PROTOCOL"
    MAX_QUEUE_SIZE = "LLMPULSE_MAX_QUEUE_SIZE"
    MAX_EXPORT_BATCH_SIZE = "LLMPULSE_MAX_EXPORT_BATCH_SIZE"
    EXPORT_INTERVAL = "LLMPULSE_EXPORT_INTERVAL"
    EXPORT_TIMEOUT = "LLMPULSE_EXPORT_TIMEOUT"
    MAX_CONTENT_CHARS = "LLMPULSE_MAX_CONTENT_CHARS"
    COMPRESSION = "LLMPULSE_COMPRESSION"
    # Any non-empty value: the pure-Python code even where the C extensions are built (the
    # OTLP encoder, the refusal scan, the redaction prefilters, Chat Completion reading). Read
    # once, when each module is imported (the collector reads it too, for its decoder).
    PURE_PYTHON = "LLMPULSE_PURE_PYTHON"
    # Standard OpenTelemetry variables, honoured as fallbacks.
    OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
    OTEL_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
    OTEL_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
    OTEL_COMPRESSION = "OTEL_EXPORTER_OTLP_COMPRESSION"


DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
PROTOCOLS = ("http/protobuf", "http/json")
COMPRESSIONS = ("none", "gzip")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class Config:
    """The resolved, validated SDK settings (see ``llmpulse.init`` for each option)."""

    service: str
    endpoint: str
    api_key: str | None
    environment: str | None
    release: str | None
    capture_content: bool
    sample_rate: float
    redact: Callable[[str], str] | None
    protocol: str
    compression: str
    max_queue_size: int
    max_export_batch_size: int
    export_interval: float
    export_timeout: float
    max_content_chars: int

    @property
    def traces_url(self) -> str:
        return self.endpoint + "/v1/traces"

    @property
    def feedback_url(self) -> str:
        return self.endpoint + "/v1/feedback"


def speedup(name: str, *args: Any) -> Any:
    """``llmpulse._speedups.<name>`` (a compiled fast path), or None where the extension is
    not built or ``LLMPULSE_PURE_PYTHON`` is set: the caller then runs its Python reference.

    With ``args``, the part is called with them (a compiled helper bound to a class of ours),
    and None is also what a TypeError or ValueError gives: the class no longer has the shape
    the C code was written for, which must cost speed, never the import. (The tests assert
    every part is in use, so such a change fails them.)"""
    if os.environ.get(ENV.PURE_PYTHON):
        return None
    try:
        from . import _speedups
    except ImportError:  # not built (no C compiler at install)
        return None
    part = getattr(_speedups, name)
    if not args:
        return part
    try:
        return part(*args)
    except (TypeError, ValueError):
        return None


def _env(name: str, environ: Mapping[str, str]) -> str | None:
    value = environ.get(name)
    return None if value is None else value.strip()


def _bool(option: str, value: object, var: str, environ: Mapping[str, str], default: bool) -> bool:
    if value is not None:
        if not isinstance(value, bool):
            raise ConfigError(f"{option} must be True or False, got {value!r}")
        return value
    raw = _env(var, environ)
    if raw is None:
        return default
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"{option}: {var}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def env_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``LLMPULSE_DISABLED`` asks for a pass-through SDK."""
    env = os.environ if environ is None else environ
    return _bool("disabled", None, ENV.DISABLED, env, False)


def _number(
    option: str,
    value: object,
    var: str,
    environ: Mapping[str, str],
    default: float,
    *,
    integer: bool,
    low: float,
    high: float,
    low_inclusive: bool = True,
) -> float:
    source = option
    if value is None:
        raw = _env(var, environ)
        if raw is None:
            return default
        source = f"{option} ({var}={raw!r})"
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise ConfigError(f"{source} must be {kind}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{source} must be {kind}, got {value!r}")
    number = float(value)
    below = number < low if low_inclusive else number <= low
    if math.isnan(number) or below or number > high:
        bracket = "[" if low_inclusive else "("
        raise ConfigError(f"{source} must be in {bracket}{low:g}, {high:g}], got {value!r}")
    return number


def _text(option: str, value: object, var: str, environ: Mapping[str, str], *fallbacks: str) -> str | None:
    if value is not None:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{option} must be a non-empty string, got {value!r}")
        return value.strip()
    for name in (var, *fallbacks):
        raw = _env(name, environ)
        if raw:
            return raw
    return None


def _endpoint(value: object, environ: Mapping[str, str]) -> str:
    raw = _text("endpoint", value, ENV.ENDPOINT, environ, ENV.OTEL_ENDPOINT) or DEFAULT_ENDPOINT
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"endpoint must be an http(s) URL such as {DEFAULT_ENDPOINT}, got {raw!r} "
            f"(from the endpoint argument, {ENV.ENDPOINT} or {ENV.OTEL_ENDPOINT})"
        )
    try:
        parts.port  # noqa: B018 -- urlsplit validates the port lazily, on access
    except ValueError:
        raise ConfigError(f"endpoint has an invalid port: {raw!r}") from None
    return raw.rstrip("/")


def build_config(
    *,
    service: object,
    endpoint: object,
    api_key: object,
    environment: object,
    release: object,
    capture_content: object,
    sample_rate: object,
    redact: object,
    protocol: object,
    max_queue_size: object,
    compression: object = None,
    max_export_batch_size: object,
    export_interval: object,
    export_timeout: object,
    max_content_chars: object,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve every option (argument → environment → default) and validate it."""
    from ._redact import resolve_redactor

    env: Mapping[str, str] = os.environ if environ is None else environ
    svc = _text("service", service, ENV.SERVICE, env, ENV.OTEL_SERVICE_NAME)
    if svc is None:
        raise ConfigError(f"service is required: pass llmpulse.init(service='my-app') or set {ENV.SERVICE}")
    proto = _text("protocol", protocol, ENV.PROTOCOL, env, ENV.OTEL_PROTOCOL) or "http/protobuf"
    if proto not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {proto!r}")
    comp = _text("compression", compression, ENV.COMPRESSION, env, ENV.OTEL_COMPRESSION) or "none"
    if comp not in COMPRESSIONS:
        raise ConfigError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {comp!r}")
    redact_value: Any = redact
    if redact_value is None:
        redact_value = _bool("redact", None, ENV.REDACT, env, True)
    queue = int(
        _number("max_queue_size", max_queue_size, ENV.MAX_QUEUE_SIZE, env, 2048, integer=True, low=1, high=10_000_000)
    )
    batch = int(
        _number(
            "max_export_batch_size",
            max_export_batch_size,
            ENV.MAX_EXPORT_BATCH_SIZE,
            env,
            512,
            integer=True,
            low=1,
            high=100_000,
        )
    )
    return Config(
        service=svc,
        endpoint=_endpoint(endpoint, env),
        api_key=_text("api_key", api_key, ENV.API_KEY, env),
        environment=_text("environment", environment, ENV.ENVIRONMENT, env),
        release=_text("release", release, ENV.RELEASE, env),
        capture_content=_bool("capture_content", capture_content, ENV.CAPTURE_CONTENT, env, True),
        sample_rate=_number(
            "sample_rate", sample_rate, ENV.SAMPLE_RATE, env, 1.0, integer=False, low=0.0, high=1.0, low_inclusive=False
        ),
        redact=resolve_redactor(redact_value, "redact"),
        protocol=proto,
        compression=comp,
        max_queue_size=queue,
        max_export_batch_size=min(batch, queue),
        export_interval=_number(
            "export_interval",
            export_interval,
            ENV.EXPORT_INTERVAL,
            env,
            1.0,
            integer=False,
            low=0.0,
            high=3600.0,
            low_inclusive=False,
        ),
        export_timeout=_number(
            "export_timeout",
            export_timeout,
            ENV.EXPORT_TIMEOUT,
            env,
            10.0,
            integer=False,
            low=0.0,
            high=600.0,
            low_inclusive=False,
        ),
        max_content_chars=int(
            _number(
                "max_content_chars",
                max_content_chars,
                ENV.MAX_CONTENT_CHARS,
                env,
                32_768,
                integer=True,
                low=0,
                high=100_000_000,
            )
        ),
    )


def validate_sequence_of_str(value: object, option: str) -> tuple[str, ...]:
    """A list of strings (not one bare string) or ConfigError naming ``option``."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"{option} must be a list of strings, got {value!r}")
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{option} must contain only strings, got {item!r}")
    return tuple(value)
