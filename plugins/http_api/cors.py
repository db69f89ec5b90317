"""CORS for the web pages that embed the chat: the origins in ``PUBLIC_ORIGINS`` only (a
browser page may hold only a public key; server-to-server callers need no CORS).

Preflights are answered here; other responses get the headers added, also errors and
streamed responses (the stream handler reads them from the request before it starts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from core import ApiError, EnecaError, api_error, error_response
from plugins.http_api.service import CORS_HEADERS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
EXPOSED_HEADERS = "X-Request-ID, Retry-After, Idempotent-Replayed, X-Visitor-Token"
MAX_AGE_S = "600"


def cors_middleware(origins: Iterable[str], api_key_header: str) -> Middleware:
    """A middleware for the allowed ``origins``; header dicts are built once, not per
    request."""
    allowed = [origin for origin in origins if origin]
    any_origin = "*" in allowed
    allow_headers = ", ".join(
        [
            "Content-Type",
            "Authorization",
            api_key_header,
            "Idempotency-Key",
            "X-Request-ID",
            "X-Visitor-Token",
        ]
    )

    def headers_for(origin: str) -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": "*" if any_origin else origin,
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
            "Vary": "Origin",
        }

    simple = {origin: headers_for(origin) for origin in allowed if origin != "*"}
    wildcard = headers_for("*")
    preflight_extra = {
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": allow_headers,
        "Access-Control-Max-Age": MAX_AGE_S,
    }

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        headers = wildcard if any_origin else simple.get(origin.rstrip("/"))
        is_preflight = (
            request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        )
        if headers is None:
            if is_preflight:
                raise ApiError(
                    403, "cors_origin_not_allowed", f"origin {origin} is not in PUBLIC_ORIGINS"
                )
            return await handler(request)
        if is_preflight:
            return web.Response(status=204, headers={**headers, **preflight_extra})
        request[CORS_HEADERS] = headers
        try:
            response = await handler(request)
        except EnecaError as exc:  # ApiError, or a domain error in its HTTP form
            error = api_error(exc)
            if error is None:
                raise
            error.headers.update(headers)
            if error is exc:
                raise
            raise error from exc
        except web.HTTPException as exc:
            if exc.status < 400:
                exc.headers.update(headers)
                raise
            response = error_response(exc)  # the core's JSON error, with CORS headers
            response.headers.update(headers)
            return response
        if not response.prepared:
            response.headers.update(headers)
        return response

    return cors
