"""``/openapi.json``: generated from the pydantic models the handlers validate with.

A handler describes itself with :func:`endpoint`; the document is built from the routes
the app really has, so a disabled plugin's endpoints are absent and nothing is hand-kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

F = TypeVar("F", bound=Callable[..., Any])
#: JSON-schema ``pattern`` of a string that ``str.strip()`` does not empty: one character
#: outside Python's whitespace, spelt out because JSON schema's ``\s`` is another set.
NOT_BLANK = (
    "[^\\t-\\r\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
)
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True, slots=True)
class EndpointDoc:
    summary: str
    request: type[BaseModel] | None = None
    responses: Mapping[int, type[BaseModel] | None] = field(default_factory=dict)
    #: ``"none"``, ``"key"`` (needs a key when keys are set) or ``"admin"`` (always).
    auth: str = "key"
    tags: tuple[str, ...] = ()
    query: Mapping[str, str | tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    content_type: str = "application/json"
    description: str = ""
    #: Optional request headers the handler reads, by name: a description, or
    #: (description, JSON schema) as for ``query``.
    headers: Mapping[str, str | tuple[str, Mapping[str, Any]]] = field(default_factory=dict)


def endpoint(
    summary: str,
    *,
    request: type[BaseModel] | None = None,
    responses: Mapping[int, type[BaseModel] | None] | None = None,
    auth: str = "key",
    tags: tuple[str, ...] = (),
    query: Mapping[str, str | tuple[str, Mapping[str, Any]]] | None = None,
    content_type: str = "application/json",
    description: str = "",
    headers: Mapping[str, str | tuple[str, Mapping[str, Any]]] | None = None,
) -> Callable[[F], F]:
    """Describe a route handler for the OpenAPI document."""

    def mark(handler: F) -> F:
        handler.__openapi__ = EndpointDoc(  # type: ignore[attr-defined]
            summary,
            request,
            dict(responses or {}),
            auth,
            tags,
            dict(query or {}),
            content_type,
            description,
            dict(headers or {}),
        )
        return handler

    return mark


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """The body of every error."""

    success: bool = False
    error: ErrorDetail


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_document(app: web.Application, title: str, version: str) -> dict[str, Any]:
    docs: list[tuple[str, str, EndpointDoc]] = []
    for route in app.router.routes():
        doc = getattr(route.handler, "__openapi__", None)
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if doc is None or path is None or route.method in ("HEAD", "*"):
            continue
        docs.append((path, route.method.lower(), doc))

    models: set[type[BaseModel]] = {ErrorResponse}
    for _, _, doc in docs:
        if doc.request:
            models.add(doc.request)
        models.update(m for m in doc.responses.values() if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schemas = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    components = dict(schemas.get("$defs", {}))

    paths: dict[str, dict[str, Any]] = {}
    for path, method, doc in sorted(docs):
        operation: dict[str, Any] = {
            "summary": doc.summary,
            "tags": list(doc.tags),
            "operationId": f"{method}_{_slug(path)}",
        }
        if doc.description:
            operation["description"] = doc.description
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
            }
            for name in _PARAM.findall(path)
        ]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": False,
                # A value is a description, or (description, JSON schema) for a non-string.
                "schema": text[1] if isinstance(text, tuple) else TypeAdapter(str).json_schema(),
                "description": text[0] if isinstance(text, tuple) else text,
            }
            for name, text in doc.query.items()
        ]
        parameters += [
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": text[1] if isinstance(text, tuple) else {"type": "string"},
                "description": text[0] if isinstance(text, tuple) else text,
            }
            for name, text in doc.headers.items()
        ]
        if parameters:
            operation["parameters"] = parameters
        if doc.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(doc.request)}},
            }
        responses: dict[str, Any] = {}
        for status, model in sorted(doc.responses.items()):
            content_schema = _ref(model) if model is not None else {}
            ctype = doc.content_type if status < 400 else "application/json"
            responses[str(status)] = {
                "description": _describe(status),
                "content": {ctype: {"schema": content_schema}},
            }
        for status in _error_statuses(doc, method):
            responses.setdefault(
                str(status),
                {
                    "description": _describe(status),
                    "content": {"application/json": {"schema": _ref(ErrorResponse)}},
                },
            )
        operation["responses"] = responses
        if doc.auth != "none":
            operation["security"] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]
        paths.setdefault(_openapi_path(path), {})[method] = operation

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "BearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _error_statuses(doc: EndpointDoc, method: str) -> list[int]:
    statuses = [500]
    if doc.auth != "none":
        statuses += [401, 403, 429]
    if doc.request is not None:
        statuses += [400, 408, 413, 415, 422]  # 408: the body came too slowly
    return statuses


def _describe(status: int) -> str:
    return {
        200: "OK",
        202: "Accepted",
        204: "No content",
        400: "Malformed request",
        401: "Missing API key",
        403: "Forbidden",
        404: "Not found",
        408: "Body sent too slowly",
        413: "Too large",
        415: "Wrong content type",
        422: "Invalid fields",
        429: "Rate limited",
        500: "Unexpected error",
        503: "Unavailable",
    }.get(status, "Response")


def _openapi_path(path: str) -> str:
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", _openapi_path(path)).strip("_") or "root"
