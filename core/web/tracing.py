"""The HTTP request span: one server span per request, outermost, so every log line and
every span of the request belong to it.

- name ``POST /api/chat`` (method and route template, never the raw path: a path can
  hold a webhook secret or a visitor id), ``http.route``, ``http.response.status_code``;
- an incoming W3C ``traceparent`` header is the parent (an n8n flow's or back end's trace
  goes on into the gateway);
- the response carries the trace id in ``X-Trace-ID`` (set before the headers go out, so
  also on a stream).

:func:`install` adds nothing when tracing is off.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from core import tracing

TRACE_HEADER = "X-Trace-ID"
#: Where the request's trace id is kept for the response header: ``request[TRACE_ID]``.
TRACE_ID = "trace_id"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_of(request: web.Request) -> str:
    """The route template (``/api/threads/{thread_id}``), or ``unmatched`` for a 404."""
    info = request.match_info
    if info.http_exception is not None:
        return "unmatched"
    resource = info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_span(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    with tracing.span(
        f"{request.method} {route}",
        kind="server",
        parent=request.headers.get("traceparent"),
        attributes={
            "http.request.method": request.method,
            "http.route": route,
            "url.scheme": request.scheme,
        },
    ) as span:
        header = span.traceparent
        if header is not None:
            request[TRACE_ID] = header[3:35]
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            span.set_attribute("http.response.status_code", exc.status)
            raise
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_error(f"HTTP {response.status}")
        return response


async def _trace_header(request: web.Request, response: web.StreamResponse) -> None:
    trace_id = request.get(TRACE_ID)
    if trace_id is not None:
        response.headers[TRACE_HEADER] = trace_id


def install(app: web.Application) -> None:
    """Trace every request of ``app`` (outermost middleware) when tracing is on."""
    if not tracing.active().enabled:
        return
    app.middlewares.insert(0, request_span)
    app.on_response_prepare.append(_trace_header)
