"""The compiled OTLP scanner (``llmpulse_collector._otlpscan``) against its pure-Python reference.

The contract: for any body, ``scan`` returns exactly what ``otlp._pb_scan`` (upb's parse, then
one Python value per field) returns with no warnings, or None to leave the body to it. These
tests generate requests (every field of the OTLP trace messages, nested values, limits, odd
encodings), mutate their bytes, and check the contract, then the whole ``decode_traces`` with
and without the scanner. The reference is what runs where the extension cannot be built.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse._cost import PriceBook
from llmpulse._refusal import RefusalDetector
from llmpulse_collector import normalize
from llmpulse_collector._otlpscan import scan  # the suite runs where the extension is built
from llmpulse_collector.ingest import Limits, PayloadError, otlp
from llmpulse_collector.normalize import EVENT_NAMES, ModelNames, Problems, truncate
from memory import traced_growth

LIM = 40  # short, so generated strings cross the cut
_PRICES = PriceBook()
_REFUSALS = RefusalDetector()
LIMITS = Limits(max_attribute_chars=LIM, max_content_chars=60)
# derandomized: the same examples every run, so the suite's time does not depend on the seed
# (some seeds sent hypothesis's example tree into a slow path for minutes)
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)

_text = st.one_of(
    st.sampled_from(["", "gen_ai.request.model", "llmpulse.refusal", "gpt-4o", "é", "x" * 39, "y" * 41]),
    st.text(max_size=50),
)
_keys = st.one_of(st.sampled_from(["k", "gen_ai.provider.name", "user.id", "", "gen_ai.evaluation.name"]), _text)


def _any_value(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
    return st.one_of(
        st.builds(lambda xs: AnyValue(array_value={"values": xs}), st.lists(children, max_size=4)),
        st.builds(
            lambda kvs: AnyValue(kvlist_value={"values": [KeyValue(key=k, value=v) for k, v in kvs]}),
            st.lists(st.tuples(_keys, children), max_size=4),
        ),
    )


_scalars = st.one_of(
    st.builds(lambda s: AnyValue(string_value=s), _text),
    st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
    st.builds(lambda i: AnyValue(int_value=i), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda d: AnyValue(double_value=d), st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=8)),  # left to the reference
    st.just(AnyValue()),  # no value at all
)
_values = st.recursive(_scalars, _any_value, max_leaves=8)
_attributes = st.lists(
    st.one_of(
        st.builds(lambda k, v: KeyValue(key=k, value=v), _keys, _values),
        st.builds(lambda k: KeyValue(key=k), _keys),  # a key without a value
    ),
    max_size=6,
)
_ids = st.one_of(st.binary(min_size=0, max_size=17), st.sampled_from([bytes(16), bytes(8), b"\x01" * 16, b"\x02" * 8]))
_times = st.one_of(st.integers(0, 2**64 - 1), st.integers(1_700_000_000 * 10**9, 1_800_000_000 * 10**9))


@st.composite
def _spans(draw: st.DrawFn) -> Span:
    events = [
        Span.Event(
            name=draw(st.sampled_from([*EVENT_NAMES, "other", ""])),
            time_unix_nano=draw(_times),
            attributes=draw(_attributes),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    links = [
        Span.Link(trace_id=draw(_ids), trace_state=draw(_text), attributes=draw(_attributes))
        for _ in range(draw(st.integers(0, 1)))
    ]
    return Span(
        trace_id=draw(_ids),
        span_id=draw(_ids),
        parent_span_id=draw(_ids),
        trace_state=draw(_text),
        name=draw(_text),
        kind=draw(st.integers(-(2**31), 2**31 - 1)),
        start_time_unix_nano=draw(_times),
        end_time_unix_nano=draw(_times),
        attributes=draw(_attributes),
        events=events,
        links=links,
        status={"code": draw(st.integers(-(2**31), 2**31 - 1)), "message": draw(_text)},
        flags=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def _requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add(schema_url=draw(_text))
        if draw(st.booleans()):
            rs.resource.attributes.extend(draw(_attributes))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add(schema_url=draw(_text))
            if draw(st.booleans()):
                ss.scope.name = draw(_text)
                ss.scope.version = draw(_text)
                ss.scope.attributes.extend(draw(_attributes))
            ss.spans.extend(draw(st.lists(_spans(), max_size=3)))
    return request


def _reference(body: bytes) -> tuple[otlp.Scanned, list[str]]:
    problems = Problems()
    return otlp._pb_scan(body, LIMITS, problems), problems.messages()


def _same(body: bytes) -> bool:
    """The contract for one body; True when the scanner answered (not None)."""
    got = scan(body, LIM, EVENT_NAMES, truncate)
    if got is None:
        return False
    want, problems = _reference(body)  # must not raise: the scanner accepted the body
    assert problems == []
    # repr compares types, order (of dict keys too), NaN and -0.0 exactly
    assert repr(got) == repr(want)
    return True


@SETTINGS
@given(request=_requests())
def test_generated_requests_scan_as_the_reference_does(request: ExportTraceServiceRequest) -> None:
    _same(request.SerializeToString())


@SETTINGS
@given(request=_requests(), edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4))
@example(request=ExportTraceServiceRequest(), edits=[(0, 0x0A)])
def test_mutated_bodies_are_scanned_alike_or_left_to_the_reference(
    request: ExportTraceServiceRequest, edits: list[tuple[int, int]]
) -> None:
    body = bytearray(request.SerializeToString())
    for at, byte in edits:
        if body and at % 3:
            body[at % len(body)] = byte
        else:
            body.insert(at % (len(body) + 1), byte)
    body_bytes = bytes(body)
    try:
        _same(body_bytes)
    except PayloadError:  # only the reference may refuse it, and then the scanner must have passed
        assert scan(body_bytes, LIM, EVENT_NAMES, truncate) is None


def _plain_request(n: int = 20) -> ExportTraceServiceRequest:
    rng = random.Random(7)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value={"string_value": "svc"})
    ss = rs.scope_spans.add(scope={"name": "llmpulse"})
    for i in range(n):
        sp = ss.spans.add(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            name="chat gpt-4o",
            kind=3,
            start_time_unix_nano=1_750_000_000 * 10**9 + i,
            end_time_unix_nano=1_750_000_001 * 10**9 + i,
        )
        sp.attributes.add(key="gen_ai.request.model", value={"string_value": "gpt-4o"})
        sp.attributes.add(key="gen_ai.usage.input_tokens", value={"int_value": 12 + i})
        sp.attributes.add(key="gen_ai.request.temperature", value={"double_value": 0.2})
        sp.attributes.add(key="llmpulse.refusal", value={"bool_value": i % 2 == 0})
        sp.attributes.add(key="tags", value={"array_value": {"values": [{"string_value": "a"}, {"int_value": 1}]}})
        sp.attributes.add(key="long", value={"string_value": "é" * (LIM + 5)})
        sp.events.add(
            name="gen_ai.evaluation.result",
            time_unix_nano=7,
            attributes=[KeyValue(key="gen_ai.evaluation.name", value=AnyValue(string_value="json"))],
        )
        sp.events.add(name="log", attributes=[KeyValue(key="x", value=AnyValue(string_value="y"))])
    return request


def test_everyday_requests_are_scanned_not_left_to_the_reference() -> None:
    body = _plain_request().SerializeToString()
    assert _same(body)
    got = scan(body, LIM, EVENT_NAMES, truncate)
    span = got[0][1][0][1][0]
    assert span[9]["long"].endswith("…[truncated 5 chars]")
    assert [e[0] for e in span[10]] == ["gen_ai.evaluation.result"]  # the "log" event is not kept
    # repeated short strings are one object (hashed once), as upb's would not be
    other = got[0][1][0][1][1]
    assert [id(k) for k in span[9]] == [id(k) for k in other[9]]
    assert span[9]["gen_ai.request.model"] is other[9]["gen_ai.request.model"]


def _with_bad_utf8(build: Any) -> bytes:
    """A body whose placeholder string ``ZZZZ`` is replaced by bytes that are not UTF-8."""
    request = _plain_request(1)
    build(request.resource_spans[0])
    body = request.SerializeToString()
    assert body.count(b"ZZZZ") == 1
    return body.replace(b"ZZZZ", b"\xff\xfe\xed\xa0")


@pytest.mark.parametrize(
    "where",
    [
        lambda rs: setattr(rs.scope_spans[0].spans[0], "trace_state", "ZZZZ"),
        lambda rs: setattr(rs, "schema_url", "ZZZZ"),
        lambda rs: setattr(rs.scope_spans[0].scope, "version", "ZZZZ"),
        lambda rs: setattr(rs.scope_spans[0].spans[0].events[1], "name", "ZZZZ"),
        lambda rs: rs.scope_spans[0].spans[0].events[1].attributes.add(key="ZZZZ"),
        lambda rs: rs.scope_spans[0].spans[0].links.add(trace_state="ZZZZ"),
        lambda rs: rs.resource.entity_refs.add(id_keys=["ZZZZ"]),
        lambda rs: setattr(rs.scope_spans[0].spans[0].status, "message", "ZZZZ"),
    ],
    ids=["trace_state", "schema_url", "scope version", "other event", "other event key", "link", "entity", "status"],
)
def test_bad_utf8_in_a_field_nobody_reads_still_gets_upbs_400(where: Any) -> None:
    body = _with_bad_utf8(where)
    assert scan(body, LIM, EVENT_NAMES, truncate) is None
    with pytest.raises(PayloadError) as err:
        _reference(body)
    assert err.value.status == 400


def test_limits_that_warn_are_left_to_the_reference() -> None:
    request = _plain_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.extend(KeyValue(key=f"k{i}", value=AnyValue(int_value=i)) for i in range(1025))
    body = request.SerializeToString()
    assert scan(body, LIM, EVENT_NAMES, truncate) is None
    _, problems = _reference(body)
    assert problems == ["kept the first 1024 attributes of a span, event or resource"]


def _decode(body: bytes) -> Any:
    result = otlp.decode_traces(
        body,
        content_type="application/x-protobuf",
        content_encoding=None,
        project="p",
        limits=LIMITS,
        prices=PriceBook(),
        refusals=RefusalDetector(),
        now_ns=1_760_000_000 * 10**9,
        models=ModelNames(),
    )
    return repr((result.spans, result.assertions, result.rejected, result.errors))


@settings(SETTINGS, max_examples=100)
@given(request=_requests())
def test_decode_traces_gives_the_same_rows_with_and_without_the_scanner(
    request: ExportTraceServiceRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = request.SerializeToString()
    assert otlp._c_scan is scan
    try:
        compiled = _decode(body)
    except PayloadError as exc:
        compiled = repr(exc)
    with monkeypatch.context() as m:
        m.setattr(otlp, "_c_scan", None)
        try:
            reference = _decode(body)
        except PayloadError as exc:
            reference = repr(exc)
    assert compiled == reference


def test_scanning_leaks_no_objects() -> None:
    """Every reference the scanner takes is released, on success and on each way out."""
    bodies = [
        _plain_request().SerializeToString(),
        _with_bad_utf8(lambda rs: setattr(rs.scope_spans[0].spans[0].status, "message", "ZZZZ")),
        _with_bad_utf8(lambda rs: rs.scope_spans[0].spans[0].events[1].attributes.add(key="ZZZZ")),
        _plain_request().SerializeToString()[:-7],  # cut short: a parse error mid-span
    ]

    def scan_all() -> None:
        for body in bodies:
            scan(body, LIM, EVENT_NAMES, truncate)

    scan_all()  # warm up (interned strings, caches)
    grown = traced_growth(scan_all, 300)
    # one leaked object a span would be ~300 x 20 x 50 bytes = 300 KB
    assert grown < 16_384, grown


# -- the compiled row builder against Normalizer.span's Python ------------------------------

_SPAN_KEYS = sorted(
    {
        *normalize._CONSUMED_GENAI,
        *normalize._TOKEN_KEYS,
        "openinference.span.kind",
        "llm.request.type",
        "gen_ai.completion.0.refusal",
        "gen_ai.prompt.0.role",
        "gen_ai.prompt.0.content",
        "llm.output_messages.0.message.content",
        "llmpulse.input",
        "input.value",
        "llmpulse.output",
        "output.value",
        "output.mime_type",
        "gen_ai.response.time_to_first_chunk",
        "http.route",
        "custom",
    }
)
_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, 7, 2**53 - 1, 2**53, -3]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 2.5, 1e300, 0.25]),
    st.sampled_from(
        [
            "",
            "chat",
            "execute_tool",
            "LLM",
            "EMBEDDING",
            "completion",
            "OpenAI",
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
            "content_filter",
            "refusal",
            "12",
            "00012",
            "²",
            "99999999999999999999",
            "I'm sorry, but I can't help with that.",
            '[{"role": "assistant", "parts": [{"type": "text", "content": "Sure, here it is."}]}]',
            '[{"role": "assistant", "parts": [{"type": "text", "content": "I can\'t assist with that."}]}]',
            '[{"role": "assistant", "parts": 5}]',
            "[not json",
            "x" * 70,
        ]
    ),
    st.text(max_size=20),
    st.text(min_size=55, max_size=65),  # across the content cut (60) and the attribute cut (40)
    st.lists(
        st.one_of(st.text(max_size=5), st.integers(0, 9), st.sampled_from(["stop", "content_filter"])), max_size=3
    ),
    st.dictionaries(st.text(max_size=4), st.integers(0, 3), max_size=2),
)
_evaluation = st.fixed_dictionaries(
    {
        "gen_ai.evaluation.name": st.sampled_from(["json", "x" * 300, "é", "", 5, None]),
        "gen_ai.evaluation.score.label": st.sampled_from(["pass", " PASS ", "ok", "failed", "weird", "", None, 3]),
    },
    optional={
        "gen_ai.evaluation.score.value": st.sampled_from(
            [0.2, 0.5, 0.9, 1.5, -0.1, float("nan"), float("inf"), 1, 0, True, "0.7", None]
        ),
        "gen_ai.evaluation.explanation": st.sampled_from([None, "because", 3, 2.5, ["a"]]),
    },
)
_events = st.lists(
    st.tuples(
        st.sampled_from(["gen_ai.evaluation.result", "exception"]),
        st.integers(0, 2**63 - 1),
        _evaluation
        | st.dictionaries(
            st.sampled_from(
                [
                    "exception.type",
                    "gen_ai.evaluation.name",
                    "gen_ai.evaluation.score.label",
                    "gen_ai.evaluation.score.value",
                ]
            ),
            _ANY,
            max_size=4,
        ),
    ),
    max_size=3,
)


@settings(SETTINGS, max_examples=600)
@given(
    attrs=st.one_of(
        st.dictionaries(st.one_of(st.sampled_from(_SPAN_KEYS), st.text(max_size=6)), _ANY, max_size=12),
        st.fixed_dictionaries({}, optional=dict.fromkeys(_SPAN_KEYS, _ANY)),  # many known keys at once
    ),
    events=_events,
    with_models=st.booleans(),
    status=st.sampled_from([(0, ""), (2, "boom"), (1, "y" * 50)]),
    name=st.sampled_from(["chat gpt-4o", "z" * 50]),
)
# every cut at once (content at 60 characters, names and messages at 40), whatever the draws
@example(
    attrs={"gen_ai.operation.name": "chat", "gen_ai.input.messages": "x" * 70, "llmpulse.output": "y" * 61},
    events=[],
    with_models=True,
    status=(2, "s" * 41),
    name="n" * 41,
)
# a failed call named after its request model's last answer, and an answer learned
@example(
    attrs={
        "gen_ai.provider.name": "OpenAI",
        "gen_ai.request.model": "gpt-4o-mini",
        "error.type": "RateLimitError",
    },
    events=[],
    with_models=True,
    status=(2, "boom"),
    name="chat",
)
@example(
    attrs={"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-1"},
    events=[],
    with_models=True,
    status=(0, ""),
    name="chat",
)
def test_the_compiled_row_builder_gives_the_python_rows(
    attrs: dict[str, Any], events: Any, with_models: bool, status: tuple[int, str], name: str
) -> None:
    results = []
    for compiled in (True, False):
        models = ModelNames() if with_models else None
        if models is not None:
            models.learn(("p", "openai", "gpt-4o-mini"), "gpt-4o-mini-2024-07-18")
        norm = normalize.Normalizer(
            project="p",
            max_attribute_chars=LIM,
            max_content_chars=60,
            prices=_PRICES,
            refusals=_REFUSALS,
            ingested_at_ms=1_760_000_000_000,
            models=models,
        )
        if not compiled:
            norm._c_ctx = None
        else:
            assert norm._c_ctx is not None
        norm.span(
            ("svc", "prod", "1.2"),
            "scope",
            "a" * 32,
            "b" * 16,
            "",
            name,
            3,
            1_750_000_000 * 10**9,
            1_750_000_002 * 10**9 + 123,
            *status,
            dict(attrs),
            [(n, t, dict(a)) for n, t, a in events],
        )
        results.append(repr((norm.spans, norm.assertions, norm.problems.messages(), models and models._answers)))
    assert results[0] == results[1]


def test_the_compiled_row_builder_takes_everyday_spans() -> None:
    """The common GenAI shapes are built in C (not left to Python), and the SDK's span whole."""
    calls = []
    real = normalize._c_span
    assert real is not None

    def spy(*args: Any) -> Any:
        row = real(*args)
        calls.append(row is not None)
        return row

    body = _plain_request().SerializeToString()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(normalize, "_c_span", spy)
        _decode(body)
    assert calls
    assert all(calls)
