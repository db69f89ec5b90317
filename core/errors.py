"""Errors the gateway turns into one clear line (start-up) or a JSON body (HTTP)."""

from __future__ import annotations

from collections.abc import Mapping


class EnecaError(Exception):
    """Base of the gateway's own errors."""


class ConfigError(EnecaError):
    """A configuration value is missing or invalid; the message names the key."""


class PluginError(EnecaError):
    """A plugin cannot be found, imported or started; the message names the plugin."""


class BusFullError(EnecaError):
    """The bus holds ``bus_max_in_flight`` messages and cannot take another now."""


class BusClosedError(EnecaError):
    """The bus is draining for shut-down and accepts no new messages."""


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
