"""The one ``openai.AsyncOpenAI`` client of the app, built from the settings."""

from __future__ import annotations

from typing import Any, Literal, overload
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from plugins.agent_openai.settings import OpenAIAgentSettings

#: OpenAI-compatible local servers need no key, but the client insists on one.
PLACEHOLDER_KEY = "not-needed"


def build_client(settings: OpenAIAgentSettings) -> openai.AsyncOpenAI:
    """A client for OpenAI or the compatible server at ``OPENAI_BASE_URL``."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    return openai.AsyncOpenAI(
        api_key=key or PLACEHOLDER_KEY,
        base_url=settings.openai_base_url or None,
        timeout=settings.openai_timeout_s,
        max_retries=settings.openai_max_retries,
    )


@overload
async def create_chat(
    client: openai.AsyncOpenAI, params: dict[str, Any], *, stream: Literal[False] = False
) -> ChatCompletion: ...


@overload
async def create_chat(
    client: openai.AsyncOpenAI, params: dict[str, Any], *, stream: Literal[True]
) -> openai.AsyncStream[ChatCompletionChunk]: ...


async def create_chat(
    client: openai.AsyncOpenAI, params: dict[str, Any], *, stream: bool = False
) -> ChatCompletion | openai.AsyncStream[ChatCompletionChunk]:
    """``client.chat.completions.create(**params, stream=stream)`` without its parameter
    transform, which walks every message against the SDK's TypedDicts (about 3 ms of CPU
    per request with a 20-turn history, more than the rest of the gateway). ``params``
    is plain JSON already, so it is posted as it is through the same client: auth,
    retries, timeouts, errors and the parsed response types are unchanged."""
    body = {**params, "stream": True} if stream else params
    return await client.post(
        "/chat/completions",
        body=body,
        cast_to=ChatCompletion,
        options={"security": {"bearer_auth": True}},
        stream=stream,
        stream_cls=openai.AsyncStream[ChatCompletionChunk],
    )


def public_url(url: object) -> str:
    """``url`` without a ``user:password@`` part, for logs and /health."""
    parts = urlsplit(str(url))
    if parts.username is None and parts.password is None:
        return str(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
