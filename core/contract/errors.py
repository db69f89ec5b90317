"""The gateway's domain errors. None of them is HTTP: :mod:`core.web.errors` is the one
place that turns them into a status, an error code and ``Retry-After``."""

from __future__ import annotations


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


class StorageUnavailable(EnecaError):
    """A write failed (disk full, read-only, I/O error): try again later."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the server cannot {what} right now (its storage is failing); retry later"
        )
        #: What the gateway was doing, e.g. ``"keep the message"``.
        self.what = what


class RateLimited(EnecaError):
    """A caller is over ``RATE_LIMIT_PER_MINUTE``; ``retry_after_s`` says when to retry."""

    def __init__(self, what: str, per_minute: int, retry_after_s: int) -> None:
        super().__init__(
            f"too many {what}: at most {per_minute} a minute; retry in {retry_after_s}s"
        )
        self.retry_after_s = retry_after_s
