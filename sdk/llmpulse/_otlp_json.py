"""OTLP/JSON encoding of llmpulse span records (see ``_otlp`` for the shared rules).

OTLP/JSON is protobuf's JSON mapping with three differences the spec mandates: trace and
span ids are hex strings (not base64), enum values are integers, and int64 values may be
strings (we always write them as strings).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ._otlp import _INT64_MAX, _INT64_MIN, _KEY_CACHE_MAX, _MAX_DEPTH, _VALUES_PER_KEY, _safe_str, _utf8
from ._span import AttrValue, SpanRecord

__all__ = ["JsonEncoder"]

# --- OTLP/JSON ---------------------------------------------------------------------------


def _json_value(v: Any, depth: int = 0) -> dict[str, Any]:
    """An OTLP/JSON ``AnyValue``: int64 as a decimal string, bytes as base64, non-finite
    doubles as "NaN" / "Infinity" / "-Infinity" (as protobuf's JSON mapping has them)."""
    t = type(v)
    if t is str:
        return {"stringValue": v}
    if t is bool:
        return {"boolValue": v}
    if t is int:
        if _INT64_MIN <= v <= _INT64_MAX:
            return {"intValue": str(v)}
        return {"stringValue": str(v)}
    if t is float:
        return {"doubleValue": v if v - v == 0.0 else _non_finite(v)}
    # Subclasses (str/int enums, numpy floats) and the rest: normalise to plain types so
    # the JSON says what the protobuf encoding says.
    if isinstance(v, str):
        return {"stringValue": str.__str__(v)}
    if isinstance(v, int):  # bool cannot be subclassed: handled above
        return _json_value(int(v))
    if isinstance(v, float):
        return _json_value(float(v))
    if isinstance(v, (list, tuple)) and depth < _MAX_DEPTH:
        if not v:
            return {"arrayValue": {}}
        return {"arrayValue": {"values": [_json_value(x, depth + 1) for x in v]}}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"bytesValue": base64.b64encode(v).decode("ascii")}
    return {"stringValue": _safe_str(v)}


def _non_finite(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    return "Infinity" if v > 0 else "-Infinity"


def _json_attrs(attrs: Mapping[str, Any], cache: dict[str, dict[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """OTLP/JSON ``KeyValue`` objects, the common types inlined as in ``_encode_attrs``.

    ``cache`` holds, per key, the finished object for recent short str, bool and all-str
    tuple values (the same rules as the protobuf cache). orjson only reads these objects,
    so one object can appear in many spans of a request.
    """
    out: list[dict[str, Any]] = []
    add = out.append
    for k, v in attrs.items():
        t = type(v)
        if t is str:
            if len(v) >= 126:  # a prompt or a completion: never repeats, not worth hashing
                add({"key": k, "value": {"stringValue": v}})
                continue
            key = v
        elif t is int:
            if _INT64_MIN <= v <= _INT64_MAX:
                add({"key": k, "value": {"intValue": str(v)}})
            else:
                add({"key": k, "value": {"stringValue": str(v)}})
            continue
        elif t is float:
            # v - v is 0.0 for every finite float, NaN for NaN and the infinities.
            add({"key": k, "value": {"doubleValue": v if v - v == 0.0 else _non_finite(v)}})
            continue
        elif t is bool:
            key = v
        elif t is list or t is tuple:
            key = tuple(v)
        else:
            add({"key": k, "value": _json_value(v)})
            continue
        # A short str, a bool or a list: likely to repeat span after span.
        seen = cache.get(k)
        if seen is None:
            if len(cache) >= _KEY_CACHE_MAX:
                cache.clear()
            seen = cache[k] = {}
        try:
            kv = seen.get(key)
        except TypeError:  # a list holding a list
            kv = None
            key = None
        if kv is None:
            kv = {"key": k, "value": _json_value(v)}
            if key is not None and (t is str or t is bool or all(type(x) is str for x in key)):
                if len(seen) >= _VALUES_PER_KEY:
                    seen.clear()
                seen[key] = kv
        add(kv)
    return out


def _scrub(o: Any) -> Any:
    """Replace lone surrogates in every string, the way ``_utf8`` does for protobuf."""
    if isinstance(o, str):
        return _utf8(o).decode()
    if isinstance(o, dict):
        return {k: _scrub(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_scrub(x) for x in o]
    return o


class JsonEncoder:
    """OTLP/HTTP JSON (``application/json``) per the OTLP spec, serialised by ``orjson``.

    OTLP/JSON is protobuf's JSON mapping with three changes: trace and span ids are
    lowercase hex (not base64), enums are integers, and field names are lowerCamelCase
    only. int64 fields are decimal strings; default values are left out.
    """

    content_type = "application/json"

    def __init__(self, resource: Mapping[str, AttrValue], scope_name: str, scope_version: str) -> None:
        res: dict[str, Any] = {}
        if resource:
            res["attributes"] = _json_attrs(resource, {})
        scope: dict[str, Any] = {}
        if scope_name:
            scope["name"] = scope_name
        if scope_version:
            scope["version"] = scope_version
        self._resource = res
        self._scope = scope
        self._span_keys: dict[str, dict[Any, dict[str, Any]]] = {}
        self._event_keys: dict[str, dict[Any, dict[str, Any]]] = {}

    def encode(self, spans: Sequence[SpanRecord]) -> bytes:
        """The same request as :meth:`ProtobufEncoder.encode`, as OTLP/JSON bytes."""
        out = []
        span_keys = self._span_keys
        event_keys = self._event_keys
        for s in spans:
            d: dict[str, Any] = {
                "traceId": s.trace_id.to_bytes(16, "big").hex(),
                "spanId": s.span_id.to_bytes(8, "big").hex(),
            }
            if s.parent_id:
                d["parentSpanId"] = s.parent_id.to_bytes(8, "big").hex()
            if s.name:
                d["name"] = s.name
            if s.kind:
                d["kind"] = s.kind
            if s.start_ns:
                d["startTimeUnixNano"] = str(s.start_ns)
            if s.end_ns:
                d["endTimeUnixNano"] = str(s.end_ns)
            if s.attributes:
                d["attributes"] = _json_attrs(s.attributes, span_keys)
            if s.events:
                events = []
                for e in s.events:
                    ed: dict[str, Any] = {}
                    if e.time_ns:
                        ed["timeUnixNano"] = str(e.time_ns)
                    if e.name:
                        ed["name"] = e.name
                    if e.attributes:
                        ed["attributes"] = _json_attrs(e.attributes, event_keys)
                    events.append(ed)
                d["events"] = events
            if s.status or s.status_message:
                st: dict[str, Any] = {}
                if s.status_message:
                    st["message"] = s.status_message
                if s.status:
                    st["code"] = s.status
                d["status"] = st
            out.append(d)
        scope_spans: dict[str, Any] = {"scope": self._scope}
        if out:
            scope_spans["spans"] = out
        request = {"resourceSpans": [{"resource": self._resource, "scopeSpans": [scope_spans]}]}
        try:
            return orjson.dumps(request)
        except orjson.JSONEncodeError:
            # The one failure our own dicts can cause: strings with lone surrogates.
            return orjson.dumps(_scrub(request))
