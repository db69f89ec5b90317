"""HTTP errors, and THE one map from the gateway's domain errors to HTTP.

The request middleware (:func:`core.web.http.request_context`) applies :func:`api_error`
to whatever a handler raises, so a channel lets :class:`~core.contract.errors.BusFullError`,
``BusClosedError``, ``StorageUnavailable`` or ``RateLimited`` propagate and every channel
answers them alike. A handler that writes its own body (an SSE stream already started)
calls :func:`api_error` itself.

| domain error | status | code | ``Retry-After`` |
|---|---|---|---|
| ``BusFullError`` | 503 | ``busy`` | 1 |
| ``BusClosedError`` | 503 | ``shutting_down`` | 5 |
| ``StorageUnavailable`` | 503 | ``storage_unavailable`` | 5 |
| ``RateLimited`` | 429 | ``rate_limited`` | the limiter's wait, whole seconds |
"""

from __future__ import annotations

from collections.abc import Mapping

from core.contract.errors import (
    BusClosedError,
    BusFullError,
    EnecaError,
    RateLimited,
    StorageUnavailable,
)


class ApiError(EnecaError):
    """An error answered to an HTTP client as ``{"success": false, "error": {...}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def api_error(exc: BaseException) -> ApiError | None:
    """The HTTP form of ``exc``: itself for an :class:`ApiError`, the mapped error for a
    domain error of the table above, ``None`` for anything else (a 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BusFullError):
        return ApiError(
            503, "busy", "too many messages in flight; retry shortly", {"Retry-After": "1"}
        )
    if isinstance(exc, BusClosedError):
        return ApiError(503, "shutting_down", "the gateway is shutting down", {"Retry-After": "5"})
    if isinstance(exc, StorageUnavailable):
        return ApiError(503, "storage_unavailable", str(exc), {"Retry-After": "5"})
    if isinstance(exc, RateLimited):
        return ApiError(429, "rate_limited", str(exc), {"Retry-After": str(exc.retry_after_s)})
    return None
