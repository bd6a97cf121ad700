"""init(): explicit argument, then LLMPULSE_* environment, then default; bad values name the option."""

from __future__ import annotations

from typing import Any

import pytest

import llmpulse
from llmpulse import testing
from llmpulse._client import get_client
from llmpulse._config import build_config

DEFAULTS: dict[str, Any] = dict.fromkeys(
    (
        "service",
        "endpoint",
        "api_key",
        "environment",
        "release",
        "capture_content",
        "sample_rate",
        "redact",
        "protocol",
        "max_queue_size",
        "max_export_batch_size",
        "export_interval",
        "export_timeout",
        "max_content_chars",
        "compression",
    )
)


def config(environ: dict[str, str] | None = None, **kwargs: Any):  # type: ignore[no-untyped-def]
    return build_config(**{**DEFAULTS, **kwargs}, environ=environ or {})


def test_defaults() -> None:
    c = config(service="svc")
    assert c.endpoint == "http://127.0.0.1:4318"
    assert c.traces_url == "http://127.0.0.1:4318/v1/traces"
    assert c.capture_content is True
    assert c.sample_rate == 1.0
    assert c.redact is not None
    assert c.protocol == "http/protobuf"


def test_environment_fills_in_and_arguments_win() -> None:
    env = {
        "LLMPULSE_SERVICE": "from-env",
        "LLMPULSE_ENDPOINT": "https://collector.example:4318/",
        "LLMPULSE_API_KEY": "k",
        "LLMPULSE_ENVIRONMENT": "staging",
        "LLMPULSE_RELEASE": "abc123",
        "LLMPULSE_CAPTURE_CONTENT": "false",
        "LLMPULSE_SAMPLE_RATE": "0.25",
        "LLMPULSE_REDACT": "off",
        "LLMPULSE_PROTOCOL": "http/json",
        "LLMPULSE_MAX_QUEUE_SIZE": "100",
    }
    c = config(env)
    assert (c.service, c.endpoint, c.api_key, c.environment, c.release) == (
        "from-env",
        "https://collector.example:4318",
        "k",
        "staging",
        "abc123",
    )
    assert c.capture_content is False
    assert c.sample_rate == 0.25
    assert c.redact is None
    assert c.protocol == "http/json"
    assert c.max_queue_size == 100
    c = config(env, service="arg", sample_rate=1.0, capture_content=True)
    assert (c.service, c.sample_rate, c.capture_content) == ("arg", 1.0, True)


def test_otel_standard_variables_are_honoured() -> None:
    c = config(
        {
            "OTEL_SERVICE_NAME": "otel-svc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        }
    )
    assert (c.service, c.endpoint, c.protocol) == ("otel-svc", "http://otel:4318", "http/json")
    c = config({"OTEL_SERVICE_NAME": "otel-svc", "LLMPULSE_SERVICE": "ours"})
    assert c.service == "ours"


@pytest.mark.parametrize(
    ("kwargs", "environ", "match"),
    [
        ({}, {}, "service is required"),
        ({"service": "s", "sample_rate": 0}, {}, "sample_rate"),
        ({"service": "s", "sample_rate": 1.5}, {}, "sample_rate"),
        ({"service": "s"}, {"LLMPULSE_SAMPLE_RATE": "half"}, "LLMPULSE_SAMPLE_RATE"),
        ({"service": "s", "endpoint": "localhost:4318"}, {}, "endpoint must be an http"),
        ({"service": "s", "endpoint": "http://host:99999"}, {}, "invalid port"),
        ({"service": "s"}, {"LLMPULSE_CAPTURE_CONTENT": "maybe"}, "LLMPULSE_CAPTURE_CONTENT"),
        ({"service": "s", "capture_content": "yes"}, {}, "capture_content"),
        ({"service": "s", "protocol": "grpc"}, {}, "protocol"),
        ({"service": "s"}, {"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "compression"),
        ({"service": "s", "max_queue_size": 0}, {}, "max_queue_size"),
        ({"service": "s", "max_queue_size": 2.5}, {}, "max_queue_size"),
        ({"service": "s", "redact": "yes"}, {}, "redact"),
        ({"service": "s", "export_timeout": float("nan")}, {}, "export_timeout"),
    ],
)
def test_bad_values_raise_config_error_naming_the_option(
    kwargs: dict[str, Any], environ: dict[str, str], match: str
) -> None:
    with pytest.raises(llmpulse.ConfigError, match=match):
        config(environ, **kwargs)


def test_init_validates_assertions_and_refusal_patterns() -> None:
    with pytest.raises(llmpulse.ConfigError, match="assertions"):
        llmpulse.init(service="s", assertions=[lambda out: True])  # type: ignore[list-item]
    with pytest.raises(llmpulse.ConfigError, match="refusal_patterns"):
        llmpulse.init(service="s", refusal_patterns="i can't")
    with pytest.raises(llmpulse.ConfigError, match="refusal_patterns"):
        llmpulse.init(service="s", extra_refusal_patterns=["(unclosed"])
    assert get_client() is None  # a failed init leaves nothing half-started


def test_custom_refusal_patterns_are_used() -> None:
    @llmpulse.llm(provider="openai", model="m")
    def call() -> str:
        return "Computer says no."

    with testing.capture(extra_refusal_patterns=[r"computer says no"]) as spans:
        call()
    assert spans.spans[0].attributes["llmpulse.refusal"] is True


def test_init_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMPULSE_SERVICE", "env-service")
    monkeypatch.setenv("LLMPULSE_ENVIRONMENT", "prod")
    exporter = testing.InMemoryExporter()
    assert llmpulse.init(exporter=exporter) is True
    client = get_client()
    assert client is not None
    assert client.resource["service.name"] == "env-service"
    assert client.resource["deployment.environment.name"] == "prod"
