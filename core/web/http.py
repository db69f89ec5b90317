"""HTTP helpers every channel uses: JSON errors, request ids and logs, body parsing.

Every error any route produces is ``{"success": false, "error": {"code", "message"}}``
with the right status; an unexpected exception is a 500 carrying the request id that is
also in the log line, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from loguru import logger
from pydantic import BaseModel, ValidationError

from core.contract.errors import EnecaError
from core.jsonenc import dumps
from core.logs import APP
from core.web.errors import ApiError, api_error

if TYPE_CHECKING:
    from core.gateway import Gateway

M = TypeVar("M", bound=BaseModel)
#: An aiohttp request handler (not the bus's ``AnswerMessage``).
RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Where the app keeps its gateway: ``request.app[GATEWAY]``.
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
#: The app's tag on its log records (``extra["app"]``): its own log file keeps them.
APP_TAG = web.AppKey("app_tag", str)

REQUEST_ID = "request_id"
CONVERSATION_ID = "conversation_id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=dumps(data), status=status, headers=headers, content_type="application/json"
    )


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, **extra}}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(exc: web.HTTPException) -> web.Response:
    """The JSON error response for an aiohttp ``HTTPException`` (404, 405, 413...), with
    the headers that matter to a client kept (``Allow``, ``Retry-After``...)."""
    code = _STATUS_CODES.get(exc.status, "http_error")
    message = exc.reason
    if exc.status == 404:
        message = "no such route"
    elif exc.status == 413:
        message = "the request body is too large"
    headers = {
        k: v
        for k, v in exc.headers.items()
        if k.lower() in ("allow", "retry-after", "www-authenticate")
    }
    return json_response(error_body(code, message), exc.status, headers)


@web.middleware
async def request_context(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    """Give each request an id (``X-Request-ID`` in and out), turn every error into JSON
    (domain errors through :func:`core.web.errors.api_error`, the one map), and log one
    line per request: method, path, status, duration."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex[:16]
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    with logger.contextualize(request_id=request_id, **{APP: request.app.get(APP_TAG)}):
        try:
            response = await handler(request)
        except EnecaError as exc:
            error = api_error(exc)
            if error is None:
                response = _unexpected(request, exc, request_id)
            else:
                response = json_response(
                    error_body(error.code, error.message), error.status, error.headers
                )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(exc)
        except Exception as exc:
            response = _unexpected(request, exc, request_id)
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        conversation = request.get(CONVERSATION_ID)
        access = logger.bind(conversation_id=conversation) if conversation else logger
        access.info(
            "{} {} {} {:.1f}ms",
            request.method,
            request.path,
            response.status,
            (time.perf_counter() - started) * 1000,
        )
        return response


def _unexpected(request: web.Request, exc: Exception, request_id: str) -> web.Response:
    """A 500 carrying the request id that is also in the log line, never a traceback."""
    logger.opt(exception=exc).error(
        "unhandled error on {} {}: {}", request.method, request.path, type(exc).__name__
    )
    body = error_body(
        "internal_error", f"unexpected error; request id {request_id}", request_id=request_id
    )
    return json_response(body, 500)


def bind_conversation(request: web.Request, conversation_id: str) -> AbstractContextManager[None]:
    """``with bind_conversation(request, cid):`` once a handler knows the conversation:
    its log lines, and the request's access line, carry ``conversation_id``."""
    request[CONVERSATION_ID] = conversation_id
    return logger.contextualize(conversation_id=conversation_id)


async def read_json(request: web.Request, *, require_json_type: bool = True) -> Any:
    """The parsed JSON body, or a 415/400/413 :class:`ApiError`."""
    if require_json_type and request.content_type not in ("application/json", ""):
        if not request.content_type.endswith("+json"):
            raise ApiError(
                415,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            )
    gateway = request.app.get(GATEWAY)
    try:  # a client sending a byte a second must not hold a handler for ever
        async with asyncio.timeout(gateway.settings.body_read_timeout_s if gateway else None):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(408, "request_timeout", "the request body took too long to arrive") from None
    if not raw.strip():
        raise ApiError(400, "invalid_json", "the request body is empty; send a JSON object")
    try:
        data = json.loads(raw.decode("utf-8"))
        # "\ud800" alone is valid JSON but no text: it would fail every later encode.
        if _SURROGATE_ESCAPE.search(raw):
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        return data
    except UnicodeEncodeError:
        raise ApiError(
            400, "invalid_json", "the body has an unpaired \\uD800-\\uDFFF escape"
        ) from None
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the request body is not valid UTF-8") from None
    except (ValueError, RecursionError) as exc:  # ValueError: also a number over 4300 digits
        message = getattr(exc, "msg", "too deeply nested or a number too long")
        raise ApiError(
            400, "invalid_json", f"the request body is not valid JSON: {message}"
        ) from None


def describe_errors(exc: ValidationError) -> tuple[str, list[dict[str, str]]]:
    fields = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"]) or "body"
        fields.append({"field": location, "problem": error["msg"]})
    summary = "; ".join(f"{f['field']}: {f['problem']}" for f in fields[:5])
    return summary, fields


def validate(model: type[M], data: Any) -> M:
    """Validate parsed JSON against ``model``; a 422 naming the fields on failure."""
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        summary, _ = describe_errors(exc)
        raise ApiError(422, "validation_error", summary) from None


async def read_model(request: web.Request, model: type[M]) -> M:
    return validate(model, await read_json(request))
