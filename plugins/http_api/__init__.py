"""The HTTP API channel: ``/api/chat`` (JSON), ``/api/chat/stream`` (SSE), thread history,
n8n chat-widget compatibility, CORS and idempotent retries."""

from plugins.http_api.plugin import HttpApiPlugin

__all__ = ["HttpApiPlugin"]
