"""The hand-written OTLP encoders, checked against opentelemetry-proto and protobuf itself.

Protobuf output is decoded with the generated ``ExportTraceServiceRequest`` and compared
field by field; it must also be canonical (protobuf re-serialises the decoded message to
the same bytes). JSON output is compared field by field and then fed to protobuf's own
JSON parser (after OTLP/JSON's hex ids are turned into base64), which must yield the
very same message as the protobuf encoding.
"""

from __future__ import annotations

import base64
import enum
import math
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse import _otlp
from llmpulse._exceptions import ConfigError
from llmpulse._otlp import ProtobufEncoder, make_encoder
from llmpulse._otlp_json import JsonEncoder
from llmpulse._span import (
    KIND_CLIENT,
    KIND_INTERNAL,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    SharedAttributes,
    SpanEvent,
    SpanRecord,
)

RESOURCE: dict[str, Any] = {
    "service.name": "shop",
    "service.version": "1.2.3",
    "deployment.environment.name": "prod",
    "process.pid": 4242,
}
SCOPE = ("llmpulse", "0.1.0")
T0 = 1_760_000_000_123_456_789
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


# --- helpers ------------------------------------------------------------------------------


def utf8(s: str) -> str:
    """What a string becomes on the wire: lone surrogates replaced."""
    return s.encode("utf-8", "replace").decode("utf-8")


def expected(v: Any) -> tuple[str, Any]:
    """The AnyValue an attribute value must become, as (oneof field, python value)."""
    if isinstance(v, str):
        return ("string_value", utf8(v))
    if isinstance(v, bool):
        return ("bool_value", v)
    if isinstance(v, int):
        if INT64_MIN <= v <= INT64_MAX:
            return ("int_value", int(v))
        return ("string_value", str(int(v)))
    if isinstance(v, float):
        return ("double_value", struct.pack("<d", v))  # bitwise: NaN and -0.0 included
    if isinstance(v, (list, tuple)):
        return ("array_value", [expected(x) for x in v])
    if isinstance(v, bytes):
        return ("bytes_value", v)
    return ("string_value", utf8(str(v)))


def decoded(av: AnyValue) -> tuple[str, Any]:
    which = av.WhichOneof("value")
    assert which is not None, "AnyValue with no value set"
    if which == "array_value":
        return (which, [decoded(x) for x in av.array_value.values])
    if which == "double_value":
        return (which, struct.pack("<d", av.double_value))
    return (which, getattr(av, which))


def assert_attrs(kvs: Sequence[KeyValue], attrs: dict[str, Any]) -> None:
    assert [kv.key for kv in kvs] == [utf8(k) for k in attrs]
    for kv, v in zip(kvs, attrs.values(), strict=True):
        assert decoded(kv.value) == expected(v), kv.key


def assert_span(got: Span, s: SpanRecord) -> None:
    assert got.trace_id == s.trace_id.to_bytes(16, "big")
    assert got.span_id == s.span_id.to_bytes(8, "big")
    assert got.parent_span_id == (s.parent_id.to_bytes(8, "big") if s.parent_id else b"")
    assert got.name == utf8(s.name)
    assert got.kind == s.kind
    assert got.start_time_unix_nano == s.start_ns
    assert got.end_time_unix_nano == s.end_ns
    assert_attrs(got.attributes, s.attributes)
    assert len(got.events) == len(s.events)
    for ge, e in zip(got.events, s.events, strict=True):
        assert ge.name == utf8(e.name)
        assert ge.time_unix_nano == e.time_ns
        assert_attrs(ge.attributes, e.attributes)
    if s.status == STATUS_UNSET and not s.status_message:
        assert not got.HasField("status")
    else:
        assert got.status.code == s.status
        assert got.status.message == utf8(s.status_message)
    assert not got.trace_state
    assert not got.links


def decode(body: bytes) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest.FromString(body)
    # Canonical encoding: fields in number order, defaults left out, minimal varints.
    assert req.SerializeToString() == body
    return req


def only_spans(req: ExportTraceServiceRequest) -> Sequence[Span]:
    assert len(req.resource_spans) == 1
    assert len(req.resource_spans[0].scope_spans) == 1
    return req.resource_spans[0].scope_spans[0].spans


def json_to_proto(body: bytes) -> ExportTraceServiceRequest:
    """Parse OTLP/JSON with protobuf's JSON parser: only the ids need translating."""
    doc = orjson.loads(body)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.ParseDict(doc, ExportTraceServiceRequest())


def _canonical_nans(values: Sequence[AnyValue]) -> None:
    for v in values:
        if v.WhichOneof("value") == "double_value" and math.isnan(v.double_value):
            v.double_value = math.nan
        elif v.WhichOneof("value") == "array_value":
            _canonical_nans(v.array_value.values)


def same_request(json_body: bytes, pb_body: bytes) -> bool:
    """The JSON request parses to the protobuf one, byte for byte (compared as bytes since
    NaN != NaN). JSON spells every NaN "NaN", so NaN payloads are normalised first."""
    got = json_to_proto(json_body)
    want = decode(pb_body)
    for rs in want.resource_spans:
        _canonical_nans([kv.value for kv in rs.resource.attributes])
        for ss in rs.scope_spans:
            for span in ss.spans:
                _canonical_nans([kv.value for kv in span.attributes])
                for e in span.events:
                    _canonical_nans([kv.value for kv in e.attributes])
    return bool(got.SerializeToString() == want.SerializeToString())


def make_span(**overrides: Any) -> SpanRecord:
    s = SpanRecord(
        overrides.pop("name", "chat gpt-4o-mini"),
        overrides.pop("trace_id", 0x0AF7651916CD43DD8448EB211C80319C),
        overrides.pop("span_id", 0xB7AD6B7169203331),
        overrides.pop("parent_id", 0x00F067AA0BA902B7),
        overrides.pop("kind", KIND_CLIENT),
        overrides.pop("start_ns", T0),
        overrides.pop("attributes", {"gen_ai.request.model": "gpt-4o-mini"}),
    )
    s.end_ns = overrides.pop("end_ns", T0 + 1_500_000_000)
    s.events = overrides.pop("events", [])
    s.status = overrides.pop("status", STATUS_UNSET)
    s.status_message = overrides.pop("status_message", "")
    assert not overrides
    return s


class Color(enum.Enum):
    RED = "red"


class Tone(str, enum.Enum):
    CASUAL = "casual"


class Level(enum.IntEnum):
    HIGH = 3


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


ALL_TYPES: dict[str, Any] = {
    "str": "hello",
    "empty.str": "",
    "unicode": "héllo wörld ✓ 😀 𝄞",
    "surrogate": "bad \ud800 here \udfff",
    "long.str": "x" * 2000,
    "longer.str": "y" * 20_000,
    "str.125": "a" * 125,
    "str.126": "a" * 126,
    "str.127": "a" * 127,
    "str.128": "a" * 128,
    "true": True,
    "false": False,
    "zero": 0,
    "one": 1,
    "int.127": 127,
    "int.128": 128,
    "int.16383": 16383,
    "int.16384": 16384,
    "negative": -1,
    "int64.max": INT64_MAX,
    "int64.min": INT64_MIN,
    "too.big": 2**63,
    "too.small": INT64_MIN - 1,
    "huge": 10**40,
    "double": 0.25,
    "double.zero": 0.0,
    "double.negzero": -0.0,
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "str.list": ["stop", "length"],
    "int.list": [1, 2, 3],
    "bool.list": [True, False],
    "double.list": [1.5, -2.0],
    "mixed.list": ["a", 1, 2.5, True, None, 2**70],
    "nested.list": [[1, "x"], [], [[True]]],
    "empty.list": [],
    "tuple": ("a", "b"),
    "long.list.item": ["z" * 300, "w"],
    "bytes": b"\x00\x01\xff",
    "empty.bytes": b"",
    "none": None,
    "dict": {"a": 1},
    "enum": Color.RED,
    "str.enum": Tone.CASUAL,
    "int.enum": Level.HIGH,
    "unprintable": Unprintable(),
    "k" * 300: "a key longer than 127 bytes",
    "surrogate.key.\udc80": 1,
}


def expected_for_unprintable(attrs: dict[str, Any]) -> dict[str, Any]:
    out = dict(attrs)
    out["unprintable"] = "<unprintable Unprintable>"
    return out


# --- protobuf -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["compiled", "python"])
def both_paths(request: pytest.FixtureRequest) -> Iterator[None]:
    """A protobuf test on the compiled encoder (where it is built; test_otlpenc.py compares it
    with the Python one byte for byte) and on the Python one alone."""
    if request.param == "compiled" and _otlp._c_encode is None:
        pytest.skip("llmpulse._otlpenc is not built here")
    with pytest.MonkeyPatch.context() as m:
        if request.param == "python":
            m.setattr(_otlp, "_c_encode", None)
        yield


@pytest.mark.usefixtures("both_paths")
def test_protobuf_span_fields() -> None:
    ev_attrs: dict[str, Any] = {
        "gen_ai.evaluation.name": "is_json",
        "gen_ai.evaluation.score.value": 1.0,
        "gen_ai.evaluation.score.label": "pass",
        "gen_ai.evaluation.explanation": "parsed",
    }
    s = make_span(
        attributes={"gen_ai.usage.input_tokens": 812, "llmpulse.refusal": False},
        events=[
            SpanEvent("gen_ai.evaluation.result", T0 + 5, ev_attrs),
            SpanEvent("second", T0 + 6, {}),
        ],
        status=STATUS_ERROR,
        status_message="boom",
    )
    req = decode(ProtobufEncoder(RESOURCE, *SCOPE).encode([s]))
    (got,) = only_spans(req)
    assert got.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert got.span_id.hex() == "b7ad6b7169203331"
    assert got.parent_span_id.hex() == "00f067aa0ba902b7"
    assert got.name == "chat gpt-4o-mini"
    assert got.kind == Span.SPAN_KIND_CLIENT
    assert got.start_time_unix_nano == T0
    assert got.end_time_unix_nano == T0 + 1_500_000_000
    assert [(kv.key, decoded(kv.value)) for kv in got.attributes] == [
        ("gen_ai.usage.input_tokens", ("int_value", 812)),
        ("llmpulse.refusal", ("bool_value", False)),
    ]
    assert [e.name for e in got.events] == ["gen_ai.evaluation.result", "second"]
    assert [e.time_unix_nano for e in got.events] == [T0 + 5, T0 + 6]
    assert_attrs(got.events[0].attributes, ev_attrs)
    assert not got.events[1].attributes
    assert got.status.code == STATUS_ERROR
    assert got.status.message == "boom"
    assert_span(got, s)


@pytest.mark.usefixtures("both_paths")
def test_protobuf_resource_and_scope() -> None:
    req = decode(ProtobufEncoder(RESOURCE, *SCOPE).encode([make_span()]))
    rs = req.resource_spans[0]
    assert_attrs(rs.resource.attributes, RESOURCE)
    assert rs.scope_spans[0].scope.name == "llmpulse"
    assert rs.scope_spans[0].scope.version == "0.1.0"
    assert not rs.schema_url


@pytest.mark.usefixtures("both_paths")
def test_protobuf_every_attribute_type() -> None:
    s = make_span(attributes=ALL_TYPES)
    (got,) = only_spans(decode(ProtobufEncoder(RESOURCE, *SCOPE).encode([s])))
    assert_attrs(got.attributes, expected_for_unprintable(ALL_TYPES))
    by_key = {kv.key: kv.value for kv in got.attributes}
    # The cases most easily got wrong, spelled out.
    assert by_key["true"].WhichOneof("value") == "bool_value"
    assert by_key["one"].WhichOneof("value") == "int_value"
    assert by_key["zero"].WhichOneof("value") == "int_value"  # a oneof: 0 is still written
    assert by_key["empty.str"].WhichOneof("value") == "string_value"
    assert by_key["empty.list"].WhichOneof("value") == "array_value"
    assert by_key["int64.min"].int_value == INT64_MIN
    assert by_key["too.big"].string_value == "9223372036854775808"
    assert by_key["surrogate"].string_value == "bad ? here ?"
    assert math.copysign(1.0, by_key["double.negzero"].double_value) == -1.0
    assert by_key["str.enum"].string_value == "casual"
    assert by_key["int.enum"].int_value == 3
    assert by_key["enum"].string_value == "Color.RED"
    assert by_key["none"].string_value == "None"
    assert [decoded(v) for v in by_key["mixed.list"].array_value.values] == [
        ("string_value", "a"),
        ("int_value", 1),
        ("double_value", struct.pack("<d", 2.5)),
        ("bool_value", True),
        ("string_value", "None"),
        ("string_value", str(2**70)),
    ]


@pytest.mark.usefixtures("both_paths")
def test_protobuf_optional_fields_left_out() -> None:
    s = make_span(parent_id=0, kind=0, name="", attributes={}, start_ns=0, end_ns=0)
    s.events = [SpanEvent("", 0, {})]
    (got,) = only_spans(decode(ProtobufEncoder({}, "", "").encode([s])))
    assert got.parent_span_id == b""
    assert got.name == ""
    assert got.kind == Span.SPAN_KIND_UNSPECIFIED
    assert got.start_time_unix_nano == got.end_time_unix_nano == 0
    assert not got.HasField("status")
    assert len(got.events) == 1
    # Ids are always written, even all-zero ones (a 16-byte id, not "unset").
    s2 = make_span(trace_id=0, span_id=0, start_ns=T0, end_ns=0)
    (got2,) = only_spans(decode(ProtobufEncoder({}, "", "").encode([s2])))
    assert got2.trace_id == bytes(16)
    assert got2.span_id == bytes(8)
    assert got2.start_time_unix_nano == T0
    assert got2.end_time_unix_nano == 0


@pytest.mark.usefixtures("both_paths")
@pytest.mark.parametrize(
    ("status", "message"),
    [(STATUS_OK, ""), (STATUS_ERROR, ""), (STATUS_UNSET, "why"), (STATUS_ERROR, "x" * 200)],
)
def test_protobuf_status(status: int, message: str) -> None:
    s = make_span(status=status, status_message=message)
    (got,) = only_spans(decode(ProtobufEncoder({}, *SCOPE).encode([s])))
    assert got.HasField("status")
    assert got.status.code == status
    assert got.status.message == message


@pytest.mark.usefixtures("both_paths")
def test_protobuf_empty_batch_is_a_valid_request() -> None:
    body = ProtobufEncoder(RESOURCE, *SCOPE).encode([])
    req = decode(body)
    assert len(req.resource_spans) == 1
    assert_attrs(req.resource_spans[0].resource.attributes, RESOURCE)
    (ss,) = req.resource_spans[0].scope_spans
    assert ss.scope.name == "llmpulse"
    assert not ss.spans
    # Even with nothing at all to say, the request parses.
    assert decode(ProtobufEncoder({}, "", "").encode([])).resource_spans[0].HasField("resource")


@pytest.mark.usefixtures("both_paths")
def test_protobuf_many_spans_and_big_lengths() -> None:
    """Lengths crossing the one-, two- and three-byte varint boundaries at every level."""
    spans = [
        make_span(
            span_id=i + 1,
            attributes={"i": i, "blob": "b" * (i * 997), "list": ["q" * i] * (i % 5)},
            events=[SpanEvent("e", T0 + i, {"x": "y" * (i * 50)})] * (i % 3),
        )
        for i in range(40)
    ]
    (ss,) = decode(ProtobufEncoder(RESOURCE, *SCOPE).encode(spans)).resource_spans[0].scope_spans
    assert len(ss.spans) == 40
    for got, s in zip(ss.spans, spans, strict=True):
        assert_span(got, s)


# Values that compare equal (or hash alike) across types, the trap for any value cache.
LOOKALIKES: list[Any] = [
    *(True, 1, "1", 1.0, "True", False, 0, "", 0.0, -0.0, "0"),
    *([1], [True], ["1"], ("1",), [1.0], [], (), [[1]], [[True]], ["1", 1], [b"1"], b"1"),
]


@pytest.mark.usefixtures("both_paths")
@pytest.mark.parametrize("fmt", ["protobuf", "json"])
def test_caches_never_confuse_values(fmt: str) -> None:
    """The per-key value caches: lookalike values under one key, alternating values, more
    distinct values than a key keeps, and more keys than the cache holds."""
    pb = ProtobufEncoder({}, *SCOPE)
    js = JsonEncoder({}, *SCOPE)
    values = LOOKALIKES + LOOKALIKES[::-1] + [f"v{i}" for i in range(100)] + ["v1", "v2", True]
    spans = [make_span(span_id=i + 1, attributes={"k": v, f"key{i}": v}) for i, v in enumerate(values)]
    spans += [make_span(attributes={f"k{i}.{j}": j for j in range(100)}) for i in range(30)]
    for ev_value in LOOKALIKES:
        spans[0].events.append(SpanEvent("e", T0, {"k": ev_value}))
    for _ in range(2):  # the second pass runs on warm caches
        pb_body = pb.encode(spans)
        for got, s in zip(only_spans(decode(pb_body)), spans, strict=True):
            assert_span(got, s)
        if fmt == "json":
            assert same_request(js.encode(spans), pb_body)


@pytest.mark.usefixtures("both_paths")
def test_shared_event_attributes_keep_each_events_name_and_time() -> None:
    """One SharedAttributes on many events: the encoder keeps their framing on it, which
    must follow a change of event name, a different time, a zero time, and stay canonical
    across a second, warm pass and a second encoder."""
    shared = SharedAttributes({"gen_ai.evaluation.name": "x" * 200, "gen_ai.evaluation.score.value": 1.0})
    names = ["gen_ai.evaluation.result", "other", "", "gen_ai.evaluation.result", "\ud800"]
    spans = []
    for i, name in enumerate(names):
        s = make_span(span_id=i + 1)
        s.events = [SpanEvent(name, T0 + i, shared), SpanEvent(name, 0, shared), SpanEvent("n", T0 + 2**40, shared)]
        spans.append(s)
    for enc in (ProtobufEncoder({}, *SCOPE), ProtobufEncoder(RESOURCE, *SCOPE)):
        for _ in range(2):
            for got, s in zip(only_spans(decode(enc.encode(spans))), spans, strict=True):
                assert_span(got, s)
    assert same_request(JsonEncoder({}, *SCOPE).encode(spans), ProtobufEncoder({}, *SCOPE).encode(spans))


@pytest.mark.usefixtures("both_paths")
def test_protobuf_surrogates_everywhere() -> None:
    bad = "x\ud83dy"
    s = make_span(
        name=bad,
        attributes={bad: bad, "list": [bad]},
        events=[SpanEvent(bad, T0, {bad: bad})],
        status=STATUS_ERROR,
        status_message=bad,
    )
    req = decode(ProtobufEncoder({bad: bad}, bad, bad).encode([s]))
    rs = req.resource_spans[0]
    assert rs.resource.attributes[0].key == "x?y"
    assert rs.scope_spans[0].scope.name == rs.scope_spans[0].scope.version == "x?y"
    (got,) = rs.scope_spans[0].spans
    assert got.name == got.events[0].name == got.status.message == "x?y"
    assert_span(got, s)


@pytest.mark.usefixtures("both_paths")
def test_protobuf_equals_official_otel_encoding() -> None:
    """Same spans through OTel's own encoder give the same message (modulo the flags field,
    which llmpulse leaves out, and the resource, built here the same way)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

    attrs: dict[str, Any] = {"s": "v", "b": True, "i": 7, "f": 0.5, "l": ["a", "b"], "il": [1, 2]}
    s = make_span(attributes=attrs, events=[SpanEvent("ev", T0 + 1, {"n": 1})])
    s.status = STATUS_ERROR
    s.status_message = "bad"
    otel = ReadableSpan(
        name=s.name,
        context=SpanContext(s.trace_id, s.span_id, is_remote=False),
        parent=SpanContext(s.trace_id, s.parent_id, is_remote=False),
        resource=Resource({"service.name": "shop"}),
        attributes=attrs,
        events=[Event("ev", {"n": 1}, T0 + 1)],
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, "bad"),
        start_time=s.start_ns,
        end_time=s.end_ns,
        instrumentation_scope=InstrumentationScope(*SCOPE),
    )
    want = encode_spans([otel])
    for span in want.resource_spans[0].scope_spans[0].spans:
        span.ClearField("flags")
    got = decode(ProtobufEncoder({"service.name": "shop"}, *SCOPE).encode([s]))
    assert got == want


# --- JSON ---------------------------------------------------------------------------------


def test_json_span_fields() -> None:
    s = make_span(
        attributes={
            "s": "v",
            "b": True,
            "i": 812,
            "neg": -5,
            "big": 2**64,
            "f": 0.5,
            "nan": math.nan,
            "inf": math.inf,
            "-inf": -math.inf,
            "l": ["a", 1],
            "empty": [],
            "bytes": b"\x00\xff",
            "none": None,
        },
        events=[SpanEvent("ev", T0 + 5, {"n": "q"})],
        status=STATUS_ERROR,
        status_message="boom",
    )
    doc = orjson.loads(JsonEncoder(RESOURCE, *SCOPE).encode([s]))
    (rs,) = doc["resourceSpans"]
    assert rs["resource"]["attributes"][0] == {
        "key": "service.name",
        "value": {"stringValue": "shop"},
    }
    assert rs["resource"]["attributes"][3] == {"key": "process.pid", "value": {"intValue": "4242"}}
    (ss,) = rs["scopeSpans"]
    assert ss["scope"] == {"name": "llmpulse", "version": "0.1.0"}
    (span,) = ss["spans"]
    assert span["traceId"] == "0af7651916cd43dd8448eb211c80319c" == s.trace_id_hex
    assert span["spanId"] == "b7ad6b7169203331" == s.span_id_hex
    assert span["parentSpanId"] == "00f067aa0ba902b7"
    assert span["name"] == "chat gpt-4o-mini"
    assert span["kind"] == 3
    assert span["startTimeUnixNano"] == str(T0)
    assert span["endTimeUnixNano"] == str(T0 + 1_500_000_000)
    assert {a["key"]: a["value"] for a in span["attributes"]} == {
        "s": {"stringValue": "v"},
        "b": {"boolValue": True},
        "i": {"intValue": "812"},
        "neg": {"intValue": "-5"},
        "big": {"stringValue": "18446744073709551616"},
        "f": {"doubleValue": 0.5},
        "nan": {"doubleValue": "NaN"},
        "inf": {"doubleValue": "Infinity"},
        "-inf": {"doubleValue": "-Infinity"},
        "l": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}},
        "empty": {"arrayValue": {}},
        "bytes": {"bytesValue": "AP8="},
        "none": {"stringValue": "None"},
    }
    assert span["events"] == [
        {
            "timeUnixNano": str(T0 + 5),
            "name": "ev",
            "attributes": [{"key": "n", "value": {"stringValue": "q"}}],
        }
    ]
    assert span["status"] == {"code": 2, "message": "boom"}
    assert set(span) == {
        "traceId",
        "spanId",
        "parentSpanId",
        "name",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "attributes",
        "events",
        "status",
    }


def test_json_defaults_left_out() -> None:
    s = make_span(parent_id=0, kind=0, name="", attributes={}, start_ns=0, end_ns=0)
    doc = orjson.loads(JsonEncoder({}, "", "").encode([s]))
    (span,) = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert set(span) == {"traceId", "spanId"}
    s.status = STATUS_OK
    doc = orjson.loads(JsonEncoder({}, "", "").encode([s]))
    assert doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["status"] == {"code": 1}


def test_json_empty_batch_is_a_valid_request() -> None:
    body = JsonEncoder(RESOURCE, *SCOPE).encode([])
    doc = orjson.loads(body)
    assert doc["resourceSpans"][0]["scopeSpans"] == [{"scope": {"name": "llmpulse", "version": "0.1.0"}}]
    assert json_to_proto(body) == decode(ProtobufEncoder(RESOURCE, *SCOPE).encode([]))


def test_json_is_accepted_by_protobufs_parser_and_equals_protobuf() -> None:
    spans = [
        make_span(attributes=ALL_TYPES, events=[SpanEvent("e", T0, ALL_TYPES)], status=STATUS_OK),
        make_span(span_id=5, parent_id=0, attributes={}, status_message="m"),
    ]
    body = JsonEncoder(RESOURCE, *SCOPE).encode(spans)
    pb = ProtobufEncoder(RESOURCE, *SCOPE).encode(spans)
    assert same_request(body, pb)
    (got, _) = only_spans(decode(pb))
    assert_attrs(got.attributes, expected_for_unprintable(ALL_TYPES))


def test_json_surrogates_replaced_like_protobuf() -> None:
    bad = "a\udc00b"
    s = make_span(name=bad, attributes={bad: [bad, bad]}, status_message=bad)
    body = JsonEncoder({bad: bad}, bad, bad).encode([s])
    assert b"a?b" in body
    assert same_request(body, ProtobufEncoder({bad: bad}, bad, bad).encode([s]))


# --- make_encoder -------------------------------------------------------------------------


def test_make_encoder() -> None:
    pb = make_encoder("http/protobuf", RESOURCE, *SCOPE)
    js = make_encoder("http/json", RESOURCE, *SCOPE)
    assert isinstance(pb, ProtobufEncoder)
    assert pb.content_type == "application/x-protobuf"
    assert isinstance(js, JsonEncoder)
    assert js.content_type == "application/json"


@pytest.mark.parametrize("protocol", ["grpc", "http/JSON", "", "json", "protobuf"])
def test_make_encoder_rejects_other_protocols(protocol: str) -> None:
    with pytest.raises(ConfigError, match="protocol") as info:
        make_encoder(protocol, RESOURCE, *SCOPE)
    assert repr(protocol) in str(info.value)
    assert isinstance(info.value, ValueError)


# --- property: random records round-trip ----------------------------------------------------

# Every code point, lone surrogates and astral characters included.
chars = st.characters(exclude_categories=())
text = st.text(chars, max_size=12) | st.builds(
    lambda s, n: s * n, st.text(chars, min_size=1, max_size=4), st.integers(1, 5000)
)
ints = st.integers(-(2**70), 2**70) | st.sampled_from(
    [0, 127, 128, 16383, 16384, INT64_MAX, INT64_MIN, 2**63, INT64_MIN - 1, 2**64]
)
scalars = text | st.booleans() | ints | st.floats(allow_nan=True, allow_infinity=True) | st.binary(max_size=300)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple),
    max_leaves=8,
)
# A few keys and lookalike values recur, so the shared encoders' caches get hit with them.
keys = text | st.sampled_from(["k", "gen_ai.request.model", ""])
attr_dicts = st.dictionaries(keys, values | st.sampled_from(LOOKALIKES), max_size=8)
u64 = st.integers(0, 2**64 - 1)
events = st.builds(SpanEvent, text, u64, attr_dicts)


@st.composite
def span_records(draw: st.DrawFn) -> SpanRecord:
    s = SpanRecord(
        draw(text),
        draw(st.integers(0, 2**128 - 1)),
        draw(u64),
        draw(st.just(0) | u64),
        draw(st.sampled_from([0, KIND_INTERNAL, 2, KIND_CLIENT, 4, 5])),
        draw(st.just(0) | u64),
        draw(attr_dicts),
    )
    s.end_ns = draw(st.just(0) | u64)
    s.events = draw(st.lists(events, max_size=3))
    s.status = draw(st.sampled_from([STATUS_UNSET, STATUS_OK, STATUS_ERROR]))
    s.status_message = draw(st.just("") | text)
    return s


# Shared across examples so the caches see one long stream of spans, as in production.
SHARED_PB = ProtobufEncoder(RESOURCE, *SCOPE)
SHARED_JSON = JsonEncoder(RESOURCE, *SCOPE)
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.usefixtures("both_paths")
@PROPERTY
@given(st.lists(span_records(), max_size=4))
def test_property_protobuf_round_trip(spans: list[SpanRecord]) -> None:
    got = only_spans(decode(SHARED_PB.encode(spans)))
    assert len(got) == len(spans)
    for g, s in zip(got, spans, strict=True):
        assert_span(g, s)


@PROPERTY
@given(st.lists(span_records(), max_size=3))
def test_property_json_equals_protobuf(spans: list[SpanRecord]) -> None:
    body = SHARED_JSON.encode(spans)
    doc = orjson.loads(body)
    got = doc["resourceSpans"][0]["scopeSpans"][0].get("spans", [])
    for g, s in zip(got, spans, strict=True):
        assert g["traceId"] == s.trace_id_hex
        assert g["spanId"] == s.span_id_hex
        assert g.get("parentSpanId") == (f"{s.parent_id:016x}" if s.parent_id else None)
        assert g.get("startTimeUnixNano") == (str(s.start_ns) if s.start_ns else None)
        assert g.get("endTimeUnixNano") == (str(s.end_ns) if s.end_ns else None)
    assert same_request(body, SHARED_PB.encode(spans))


@PROPERTY
@given(attr_dicts, text, text)
def test_property_resource_and_scope(resource: dict[str, Any], name: str, version: str) -> None:
    body = ProtobufEncoder(resource, name, version).encode([])
    rs = decode(body).resource_spans[0]
    assert_attrs(rs.resource.attributes, resource)
    assert rs.scope_spans[0].scope.name == utf8(name)
    assert rs.scope_spans[0].scope.version == utf8(version)
    assert same_request(JsonEncoder(resource, name, version).encode([]), body)
