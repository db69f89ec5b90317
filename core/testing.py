"""The plugin author's test kit (a pytest plugin).

Opt in with ``eneca_bot_kit = true`` in your pytest configuration, ``pytest -p
core.testing``, or ``pytest_plugins = ["core.testing"]`` in your rootdir ``conftest.py``
(see :mod:`core.pytest_plugin` for why it is not loaded by itself). It gives:

- ``eneca_app``: an async factory that starts the real gateway in-process with the
  plugins you choose plus yours, on a fresh data dir, and returns an aiohttp test client;
- :class:`ScriptedAgent`: an agent whose replies the test gives (streamed in chunks);
- :class:`InMemoryConversationStore` (re-exported) and :func:`provide` to register any
  agent or store through the real hooks;
- :func:`ask`: publish a message on the bus and await its reply;
- for durable channels: ``mock_http`` (outbound HTTP mocked with aioresponses, the test
  client's own requests let through), :func:`sent_json`, :func:`wait_delivered`,
  :func:`wait_settled` and :data:`FAST_DELIVERY`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.contract.agent import AgentRequest, ChunkSink
from core.contract.events import Message, Reply, ReplyError
from core.engine.memory import InMemoryConversationStore
from core.gateway import Gateway
from core.plugins import hookimpl
from core.web.app import create_app
from core.web.http import GATEWAY

__all__ = [
    "FAST_DELIVERY",
    "InMemoryConversationStore",
    "ScriptedAgent",
    "ask",
    "eneca_app",
    "failed_reply",
    "gateway_of",
    "mock_http",
    "provide",
    "sent_json",
    "service_missing",
    "wait_delivered",
    "wait_settled",
    "wait_until",
]

#: Core settings for tests of durable channels: retries after 10-50 ms instead of seconds,
#: while a provider's ``retry_after`` of up to 5 s is still honoured, and a quick shut-down.
#: Use as ``eneca_app(settings={"core": FAST_DELIVERY})``.
FAST_DELIVERY: Mapping[str, Any] = {
    "delivery_base_delay_s": 0.01,
    "delivery_max_delay_s": 5.0,
    "delivery_max_attempts": 5,
    "shutdown_grace_s": 0.5,
}

ReplySource = str | Callable[[AgentRequest], str | Awaitable[str]] | Exception


class ScriptedAgent:
    """An :class:`~core.contract.agent.Agent` that answers from a script.

    ``replies`` is used in order (the last one repeats); each is a string, a function of
    the request (sync or async), or an exception to raise. With no script it echoes.
    Streamed replies are emitted ``chunk_size`` characters at a time, ``chunk_delay``
    seconds apart. ``requests`` records every request it got.
    """

    def __init__(
        self,
        replies: Sequence[ReplySource] | ReplySource | None = None,
        *,
        chunk_size: int = 4,
        chunk_delay: float = 0.0,
        delay: float = 0.0,
        actions: Sequence[str] = (),
    ) -> None:
        if replies is None:
            replies = [lambda request: f"echo: {request.message.text}"]
        elif isinstance(replies, str | Exception) or callable(replies):
            replies = [replies]
        self.replies = list(replies)
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.delay = delay
        self.actions = tuple(actions)
        self.requests: list[AgentRequest] = []
        self.cancelled = 0

    async def respond(self, request: AgentRequest, on_chunk: ChunkSink) -> Reply:
        self.requests.append(request)
        source = self.replies[min(len(self.requests), len(self.replies)) - 1]
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if isinstance(source, Exception):
                raise source
            text = source(request) if callable(source) else source
            if asyncio.iscoroutine(text):
                text = await text
            if request.message.stream:
                for start in range(0, len(text), self.chunk_size):
                    if self.chunk_delay:
                        await asyncio.sleep(self.chunk_delay)
                    await on_chunk(text[start : start + self.chunk_size])
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        message = request.message
        return Reply(message.conversation_id, message.channel, text, message, actions=self.actions)

    def status(self) -> Mapping[str, Any]:
        return {"configured": True, "scripted": True}


def service_missing(reason: str, in_ci: str = "CI=true requires it") -> NoReturn:
    """Skip a test whose service or tool is missing here (``reason`` says which); with
    ``CI=true`` fail instead, adding ``in_ci``: a green CI must mean the test ran."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; {in_ci}", pytrace=False)
    pytest.skip(reason)


def failed_reply(message: Message, text: str, code: str) -> Reply:
    """A fallback reply, as an agent returns when its model failed."""
    return Reply(
        message.conversation_id, message.channel, text, message, error=ReplyError(code, text)
    )


class _Provider:
    """Registers an agent and/or a store through the real provider hooks (tryfirst)."""

    def __init__(self, agent: Any = None, store: Any = None) -> None:
        self._agent = agent
        self._store = store

    @hookimpl(tryfirst=True)
    def agent(self) -> Any:
        return self._agent

    @hookimpl(tryfirst=True)
    def conversation_store(self) -> Any:
        return self._store


def provide(agent: Any = None, store: Any = None) -> object:
    """A plugin object that contributes ``agent`` and/or ``store`` ahead of built-ins."""
    return _Provider(agent, store)


def gateway_of(client: TestClient | web.Application) -> Gateway:
    """The :class:`~core.gateway.Gateway` behind a test client (or an app)."""
    app = client if isinstance(client, web.Application) else client.app
    assert app is not None
    return app[GATEWAY]


async def ask(
    gateway: Gateway, text: str, conversation_id: str = "c1", channel: str = "test", **fields: Any
) -> Reply:
    """Publish a message and wait for its reply."""
    handle = await gateway.publish(Message(conversation_id, channel, text, **fields))
    assert handle is not None
    return await handle.reply()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true (checked every 10 ms); ``TimeoutError`` after
    ``timeout`` seconds. For observing effects of background work in tests."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polling an arbitrary condition
            await asyncio.sleep(0.01)


async def wait_delivered(
    gateway: Gateway, count: int = 1, channel: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """Wait until the outbox has finished ``count`` replies (of ``channel``, or of all
    channels): delivered or given up. Returns the inbox/outbox figures
    (``gateway.delivery_stats``): ``received``, ``duplicates``, ``delivered``, ``failed``,
    ``retries``, ``pending_deliveries``, ``unanswered``."""
    async with asyncio.timeout(timeout):
        while True:
            stats = await gateway.delivery_stats(channel)
            if stats["delivered"] + stats["failed"] >= count:
                return stats
            await asyncio.sleep(0.01)


async def wait_settled(
    gateway: Gateway, channel: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """Wait until every accepted durable message is answered and every reply is
    delivered or given up (nothing pending, nothing being sent); returns the figures."""
    async with asyncio.timeout(timeout):
        while True:
            stats = await gateway.delivery_stats(channel)
            idle = gateway._bus.stats()["in_flight"] == 0 and gateway._outbox.in_progress == 0
            if idle and stats["unanswered"] == 0 and stats["pending_deliveries"] == 0:
                return stats
            await asyncio.sleep(0.01)


def sent_json(mock: Any, url: str, method: str = "POST") -> list[Any]:
    """The JSON bodies sent to ``url`` through ``mock`` (the ``mock_http`` fixture, an
    ``aioresponses``), oldest first. ``url`` is the full URL without a query string."""
    from yarl import URL

    calls = mock.requests.get((method.upper(), URL(url)), [])
    return [call.kwargs.get("json") for call in calls]


@pytest.fixture
def mock_http() -> Iterator[Any]:
    """Outbound HTTP of the code under test, mocked with ``aioresponses``.

    Register answers with ``mock_http.post(url, payload=..., status=...)`` (each is used
    once unless ``repeat=True``); read what was sent with :func:`sent_json`. Requests to
    127.0.0.1 and localhost (the test client talking to the app) are let through.
    """
    try:
        from aioresponses import aioresponses
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.fail("the mock_http fixture needs aioresponses: pip install aioresponses")
    with aioresponses(passthrough=["http://127.0.0.1", "http://localhost"]) as mock:
        yield mock


AppFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def eneca_app(tmp_path: Path) -> AsyncIterator[AppFactory]:
    """Start the real gateway: ``client = await eneca_app(plugins=[...], agent=...)``.

    Arguments: ``plugins`` (names of installed plugins to enable; default none),
    ``extra`` (``{name: plugin object}`` registered as well, e.g. the plugin under test),
    ``agent`` / ``store`` (provided through the hooks ahead of built-ins), ``settings``
    (``{section: {key: value}}``, the highest config layer; ``core`` for the gateway's
    own), ``data_dir``. Data and logs go to a fresh temporary folder. The server listens
    on a real loopback port; every client is closed (the gateway shut down) at the end.
    A start-up failure raises from ``await eneca_app(...)`` and leaves nothing open.
    """
    clients: list[TestClient] = []

    async def make(
        plugins: Sequence[str] = (),
        *,
        extra: Mapping[str, Any] | None = None,
        agent: Any = None,
        store: Any = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        data_dir: Path | None = None,
    ) -> TestClient:
        config_file = tmp_path / "settings.toml"
        config_file.touch()
        overrides: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (settings or {}).items()}
        core = overrides.setdefault("core", {})
        core.setdefault("plugins", list(plugins))
        core.setdefault("data_dir", str(data_dir or tmp_path / "data"))
        core.setdefault("log_dir", str(tmp_path / "logs"))
        objects = dict(extra or {})
        if agent is not None or store is not None:
            objects["test_provider"] = provide(agent, store)
        app = create_app(
            config_file=config_file, env_file=None, overrides=overrides, plugins=objects
        )
        client = TestClient(TestServer(app))
        try:
            await client.start_server()
        except BaseException:
            await client.close()
            raise
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        await client.close()
