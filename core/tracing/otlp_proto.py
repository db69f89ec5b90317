"""OTLP trace requests (``ExportTraceServiceRequest``) written as protobuf bytes directly.

The SDK's encoder builds a tree of generated protobuf messages per span: about 20 µs of
CPU a span on a quiet machine, more than recording the span, and several spans per
request. Our spans hold only strings, booleans, numbers and lists of them, so writing
the wire format by hand costs a fraction of that. The bytes go out through the SDK's
OTLP/HTTP client (endpoint, headers, compression, retries as configured); the tests
decode them with ``opentelemetry-proto`` as any receiver would.

Field numbers: opentelemetry/proto/trace/v1/trace.proto, common/v1/common.proto,
resource/v1/resource.proto, collector/trace/v1/trace_service.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import StatusCode

_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
_INT64 = (1 << 64) - 1
#: Span.flags: "whether the parent is remote" is known (bit 8), and is true (bit 9).
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte(s), the length, the payload."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """An ``AnyValue`` message."""
    kind = type(value)
    if kind is str:
        return _delimited(b"\x0a", value.encode("utf-8", "replace"))
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + _varint(value & _INT64)
    if kind is float:
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, list | tuple):
        items = b"".join(_delimited(b"\x0a", _any_value(item)) for item in value)
        return _delimited(b"\x2a", items)
    if isinstance(value, bytes):
        return _delimited(b"\x3a", value)
    return _delimited(b"\x0a", str(value).encode("utf-8", "replace"))


@lru_cache(maxsize=4096)
def _constant_pair(key: str, value: str | bool) -> bytes:
    """A ``KeyValue`` whose value repeats from span to span (a model, an operation)."""
    return _delimited(b"\x0a", key.encode()) + _delimited(b"\x12", _any_value(value))


def _pair(key: str, value: Any) -> bytes:
    kind = type(value)
    if (kind is str and len(value) <= 64) or kind is bool:
        return _constant_pair(key, value)
    return _delimited(b"\x0a", key.encode()) + _delimited(b"\x12", _any_value(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    return b"".join(_delimited(tag, _pair(key, value)) for key, value in attributes.items())


def _event(event: Event) -> bytes:
    return (
        b"\x09"
        + _FIXED64(event.timestamp)
        + _delimited(b"\x12", event.name.encode())
        + _attributes(b"\x1a", event.attributes)
    )


def _span(span: ReadableSpan) -> bytes:
    context = span.context
    assert context is not None
    parts = [
        b"\x0a\x10",
        context.trace_id.to_bytes(16, "big"),
        b"\x12\x08",
        context.span_id.to_bytes(8, "big"),
    ]
    flags = _HAS_IS_REMOTE
    parent = span.parent
    if parent is not None:
        parts += [b"\x22\x08", parent.span_id.to_bytes(8, "big")]
        if parent.is_remote:
            flags |= _IS_REMOTE
    parts += [
        _delimited(b"\x2a", span.name.encode("utf-8", "replace")),
        b"\x30",
        _varint(span.kind.value + 1),  # the API counts from INTERNAL = 0, OTLP from 1
        b"\x39",
        _FIXED64(span.start_time or 0),
        b"\x41",
        _FIXED64(span.end_time or 0),
        _attributes(b"\x4a", span.attributes),
    ]
    for event in span.events:
        parts.append(_delimited(b"\x5a", _event(event)))
    status = span.status
    if status.status_code is not StatusCode.UNSET:
        body = b"\x18" + _varint(status.status_code.value)
        if status.description:
            body = _delimited(b"\x12", status.description.encode("utf-8", "replace")) + body
        parts.append(_delimited(b"\x7a", body))
    parts += [b"\x85\x01", _FIXED32(flags)]
    return b"".join(parts)


@lru_cache(maxsize=16)
def _resource(resource: Resource) -> bytes:
    return _attributes(b"\x0a", resource.attributes)


@lru_cache(maxsize=16)
def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    body = _delimited(b"\x0a", scope.name.encode())
    if scope.version:
        body += _delimited(b"\x12", scope.version.encode())
    return body


def encode_request(spans: Iterable[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest`` of ``spans``, grouped by resource and scope."""
    groups: dict[tuple[Resource, InstrumentationScope | None], list[bytes]] = {}
    for span in spans:
        key = (span.resource, span.instrumentation_scope)
        groups.setdefault(key, []).append(_delimited(b"\x12", _span(span)))
    out: list[bytes] = []
    for (resource, scope), encoded in groups.items():
        scope_spans = _delimited(b"\x0a", _scope(scope)) + b"".join(encoded)
        if scope is not None and scope.schema_url:
            scope_spans += _delimited(b"\x1a", scope.schema_url.encode())
        resource_spans = _delimited(b"\x0a", _resource(resource)) + _delimited(b"\x12", scope_spans)
        if resource.schema_url:
            resource_spans += _delimited(b"\x1a", resource.schema_url.encode())
        out.append(_delimited(b"\x0a", resource_spans))
    return b"".join(out)
