"""eneca-bot's core: events, the bus, the hooks, plugin loading and the app factory.

Plugins import what they need from here::

    from core import hookimpl, Message, Reply
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("eneca-bot")
except metadata.PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0"

from core.events import Chunk, Message, Reply, ReplyError, SessionCleared
from core.plugins import hookimpl

__all__ = [
    "Chunk",
    "Message",
    "Reply",
    "ReplyError",
    "SessionCleared",
    "__version__",
    "hookimpl",
]
