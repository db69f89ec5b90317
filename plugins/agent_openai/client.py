"""The one ``openai.AsyncOpenAI`` client of the app, built from the settings."""

from __future__ import annotations

import json
from typing import Any

import openai
from openai import _constants as openai_constants

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
        http_client=_http_client(settings),
    )


def _http_client(settings: OpenAIAgentSettings) -> Any:
    """One of the SDK's own HTTP clients (its defaults, our connection limit): aiohttp
    (``openai.DefaultAioHttpClient``) unless ``OPENAI_HTTP_CLIENT=httpx``.

    With 64 streams at once, the default transport (httpcore, h11, anyio in Python)
    spent about 30% of the gateway's CPU reading chunks; aiohttp parses in C.
    """
    size = settings.openai_max_connections
    defaults = openai_constants.DEFAULT_CONNECTION_LIMITS
    limits = type(defaults)(
        max_connections=size,
        max_keepalive_connections=size,
        keepalive_expiry=defaults.keepalive_expiry,
    )
    if settings.openai_http_client == "aiohttp":
        return openai.DefaultAioHttpClient(limits=limits)
    return openai.DefaultAsyncHttpxClient(limits=limits)


#: Chunks of a streamed completion, left as the decoded JSON (``cast_to=object``).
RawStream = openai.AsyncStream[object]

_OPTIONS: Any = {"security": {"bearer_auth": True}}


def _ascii_json(body: Any) -> bytes:
    # ASCII escapes keep a lone surrogate (a broken client's half emoji) encodable.
    return json.dumps(body, separators=(",", ":")).encode()


try:  # optional accelerator
    import orjson

    def encode_body(body: Any) -> bytes:
        """``body`` as JSON bytes, ready to post (posted as ``content``, sent as it is)."""
        try:
            return orjson.dumps(body)
        except TypeError:  # a lone surrogate, or past orjson's nesting limit
            return _ascii_json(body)

except ImportError:  # pragma: no cover - depends on the environment
    encode_body = _ascii_json


async def create_chat(client: openai.AsyncOpenAI, params: dict[str, Any]) -> object:
    """``client.chat.completions.create(**params)`` as plain JSON.

    Posted through the same client, so auth, retries, timeouts and the error types are
    the SDK's, but without its request transform (which walks every message against the
    SDK's TypedDicts: about 3 ms of CPU per request with a 20-turn history) and without
    building a pydantic ``ChatCompletion``: ``cast_to=object`` hands back the decoded
    body. Read it with :func:`plugins.agent_openai.wire.completion_result`.
    """
    return await client.post(
        "/chat/completions", content=encode_body(params), cast_to=object, options=_OPTIONS
    )


async def stream_chat(client: openai.AsyncOpenAI, params: dict[str, Any]) -> RawStream:
    """The streamed form of :func:`create_chat`: the SDK decodes the server-sent events
    (``[DONE]``, error events, timeouts and cut connections as its exceptions) and yields
    each chunk's decoded JSON, not a pydantic ``ChatCompletionChunk`` (that model cost
    about 11 ms of CPU per 30-token reply). Read them with
    :class:`plugins.agent_openai.wire.StreamReader`; ``close()`` the stream after."""
    return await client.post(
        "/chat/completions",
        content=encode_body({**params, "stream": True}),
        cast_to=object,
        options=_OPTIONS,
        stream=True,
        stream_cls=RawStream,
    )
