"""A test OTLP/HTTP trace receiver: what Jaeger, Tempo or Langfuse would get.

A real aiohttp application on ``127.0.0.1`` (random port) taking ``POST /v1/traces`` with
protobuf bodies (gzip or not), decoded with ``opentelemetry-proto``::

    async with OtlpReceiver() as receiver:          # or the ``otlp_receiver`` fixture
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        ...
        spans = await receiver.wait_for(lambda spans: any(s.name == "chat" for s in spans))
        receiver.children_of(spans[0])               # parent links, by span id

``receiver.status = 503`` makes it refuse batches (an overloaded collector).

To use the fixture in a test folder, import it in that folder's ``conftest.py``::

    from tests.support.otlp_receiver import otlp_receiver  # noqa: F401
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["OtlpReceiver", "ReceivedSpan", "otlp_receiver"]

#: Span kinds as the proto numbers them.
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    return getattr(value, which)


def _attributes(items: Sequence[Any]) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


@dataclass(frozen=True)
class ReceivedEvent:
    name: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids in lower-case hex (``parent_span_id`` "" for a root)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    attributes: dict[str, Any]
    events: list[ReceivedEvent]
    status_code: int  # 0 unset, 1 ok, 2 error
    start_ns: int
    end_ns: int
    resource: dict[str, Any] = field(repr=False)

    def text(self) -> str:
        """Everything the span carries as text: to search for what must not be there."""
        parts = [self.name, *map(str, self.attributes.values())]
        for event in self.events:
            parts += [event.name, *map(str, event.attributes.values())]
        return "\n".join(parts)


class OtlpReceiver:
    """Collects every span the gateway exports, in arrival order."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.content_types: list[str] = []
        self.headers: list[dict[str, str]] = []
        #: The status answered to the next batches (200: take them).
        self.status = 200
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    @property
    def endpoint(self) -> str:
        """For ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter appends ``/v1/traces``)."""
        return f"http://127.0.0.1:{self.port}"

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        self.content_types.append(request.content_type)
        self.headers.append(dict(request.headers))
        if self.status != 200:
            return web.Response(status=self.status)
        if request.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=KINDS.get(span.kind, str(span.kind)),
                            attributes=_attributes(span.attributes),
                            events=[
                                ReceivedEvent(event.name, _attributes(event.attributes))
                                for event in span.events
                            ],
                            status_code=span.status.code,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            resource=resource,
                        )
                    )
        self._arrived.set()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def start(self) -> OtlpReceiver:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OtlpReceiver:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 20.0
    ) -> list[ReceivedSpan]:
        """Every span received once ``predicate(spans)`` holds (a TimeoutError if never)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.spans):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                names = sorted({span.name for span in self.spans})
                raise TimeoutError(f"spans never matched; received {names}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass
        return list(self.spans)

    async def wait_for_span(self, name: str, timeout: float = 20.0) -> ReceivedSpan:
        spans = await self.wait_for(lambda spans: any(s.name == name for s in spans), timeout)
        return next(span for span in spans if span.name == name)

    def named(self, name: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.name == name]

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]

    def children_of(self, parent: ReceivedSpan) -> list[ReceivedSpan]:
        return [
            span
            for span in self.spans
            if span.trace_id == parent.trace_id and span.parent_span_id == parent.span_id
        ]

    def parent_of(self, child: ReceivedSpan) -> ReceivedSpan | None:
        for span in self.spans:
            if span.trace_id == child.trace_id and span.span_id == child.parent_span_id:
                return span
        return None


@pytest.fixture
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    async with OtlpReceiver() as receiver:
        yield receiver
