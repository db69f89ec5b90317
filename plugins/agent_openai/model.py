"""The app's one ``openai.AsyncOpenAI`` client, imported and built on first use.

Importing the SDK costs about 15 MB of memory and a third of a second; a gateway that has
not asked the model anything yet (or answers from the knowledge base only) pays neither.
The first request imports it on a worker thread, so the event loop keeps serving
meanwhile; every later request finds the client ready.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from plugins.agent_openai.settings import OpenAIAgentSettings

if TYPE_CHECKING:
    from plugins.agent_openai.client import RawStream

#: Where the SDK sends requests when no ``OPENAI_BASE_URL`` is set.
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIModel:
    """Sends chat completions through the lazily built client (:mod:`.client`)."""

    def __init__(self, settings: OpenAIAgentSettings) -> None:
        self.settings = settings
        #: As the SDK shows it (a trailing slash), without any ``user:password@``.
        self.base_url = public_url((settings.openai_base_url or DEFAULT_BASE_URL).rstrip("/") + "/")
        self._calls: ModuleType | None = None
        self._client: Any = None
        self._loading = asyncio.Lock()

    async def _ready(self) -> tuple[ModuleType, Any]:
        if self._calls is None:
            async with self._loading:
                if self._calls is None:
                    calls = await asyncio.to_thread(
                        importlib.import_module, "plugins.agent_openai.client"
                    )
                    self._client = calls.build_client(self.settings)
                    self._calls = calls
        return self._calls, self._client

    async def sdk(self) -> ModuleType:
        """The ``openai`` package (imported on a worker thread the first time)."""
        await self._ready()
        return sys.modules["openai"]

    async def create_chat(self, params: dict[str, Any]) -> object:
        """A whole completion as decoded JSON (:func:`.client.create_chat`)."""
        calls, client = await self._ready()
        return await calls.create_chat(client, params)

    async def stream_chat(self, params: dict[str, Any]) -> RawStream:
        """A streamed completion (:func:`.client.stream_chat`); ``close()`` it after."""
        calls, client = await self._ready()
        return await calls.stream_chat(client, params)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._calls = None


def public_url(url: object) -> str:
    """``url`` without a ``user:password@`` part, for logs and /health."""
    parts = urlsplit(str(url))
    if parts.username is None and parts.password is None:
        return str(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
