"""An OTLP/HTTP trace receiver for the tracing benchmark, run in its own process.

Takes ``POST /v1/traces`` (protobuf) and counts the spans it decodes, so a run shows the
traces really went out; ``GET /stats`` returns the counts. Its CPU is not the gateway's.

    python benchmarks/otlp_sink.py --port 4318
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_OK = ExportTraceServiceResponse().SerializeToString()


class Sink:
    def __init__(self) -> None:
        self.batches = 0
        self.spans = 0

    async def traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        self.batches += 1
        self.spans += sum(
            len(scope.spans) for resource in export.resource_spans for scope in resource.scope_spans
        )
        return web.Response(body=_OK, content_type="application/x-protobuf")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"batches": self.batches, "spans": self.spans})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    sink = Sink()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", sink.traces)
    app.router.add_get("/stats", sink.stats)
    app.router.add_get("/health", sink.health)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=lambda *_: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
