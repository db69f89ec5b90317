"""Every hook a plugin can implement. Built-in plugins use exactly these.

Implementations may be ``async def``: the gateway awaits whatever a hook returns.
An implementation may take fewer arguments than the spec lists (pluggy passes only the
names it asks for), so arguments are only ever added, never changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from aiohttp import web
    from pydantic_settings import BaseSettings

    from core.contract.agent import Agent, Tool
    from core.contract.delivery import DeliveryProgress, DeliveryResult
    from core.contract.events import Message, Reply, SessionCleared
    from core.contract.health import Check
    from core.contract.knowledge import Passage
    from core.contract.ratelimit import RateLimitBackend
    from core.contract.store import ConversationStore
    from core.engine.bus import MessageBus
    from core.gateway import Gateway

hookspec = pluggy.HookspecMarker("eneca_bot")


# --------------------------------------------------------------------------------------
# Set-up: settings, routes, resources. Called once per gateway, before it serves.
# --------------------------------------------------------------------------------------


@hookspec
def settings_model() -> type[BaseSettings] | None:
    """Declare this plugin's settings class.

    Called while the configuration is loaded, before anything starts. Return a subclass of
    ``core.PluginSettings`` (it names its ``section`` in the TOML file and its
    env prefix). The gateway validates every enabled plugin's settings at start-up, so a bad
    value stops ``serve`` and ``check`` with one line naming the key. Read the loaded
    instance later with ``gateway.settings_for(YourSettings)``.

    :return: the settings class, or ``None`` when the plugin has no settings.
    """


@hookspec
def register_routes(gateway: Gateway) -> Sequence[web.AbstractRouteDef] | None:
    """Contribute HTTP routes to the one aiohttp application.

    Called once while the app is built. Return route definitions (``web.post(...)`` etc.);
    annotate handlers with ``core.endpoint`` to describe them in
    ``/openapi.json``. A disabled plugin contributes nothing, so its routes answer 404.

    :return: a list of route definitions.
    """


@hookspec
def register_middlewares(gateway: Gateway) -> Sequence[Any] | None:
    """Contribute aiohttp middlewares (``@web.middleware`` functions).

    Called once while the app is built. They run inside the gateway's own error and
    request-log middlewares, so an exception they raise still becomes a JSON error.

    :return: a list of middlewares, applied in plugin registration order.
    """


@hookspec
def lifespan(gateway: Gateway) -> AsyncIterator[None] | None:
    """Open resources at start-up and close them at shut-down.

    Return an async generator that yields exactly once (an aiohttp ``cleanup_ctx``): code
    before the ``yield`` runs at start-up, code after it at shut-down, in reverse order of
    start-up. If a later plugin fails to start, earlier ones are still closed. Raising
    before the ``yield`` stops start-up with the plugin's name in the message.

    :return: an async generator, or ``None`` when there is nothing to open.
    """


@hookspec
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add sub-commands to the ``eneca-bot`` command line.

    Called when the CLI starts, for every enabled plugin. Add a parser with
    ``subparsers.add_parser(name)`` and set ``func`` with ``set_defaults(func=...)``; the
    function receives the parsed ``argparse.Namespace`` and a loaded, not started,
    :class:`~core.gateway.Gateway`, and returns an exit code (it may be ``async``).
    """


@hookspec
def config_problems(gateway: Gateway) -> Sequence[str] | None:
    """Problems of the configuration that ``eneca-bot check`` must fail on.

    Called by ``check`` only, with a loaded, not started, gateway: look at the world the
    settings point to (a folder that does not exist, say), not at the values (the settings
    model validates those). Return one line per problem, naming the setting; ``check``
    prints them and exits with 1. ``serve`` does not call it: handle the same problem at
    start-up as your plugin sees fit.
    """


@hookspec
def database_files(gateway: Gateway) -> Sequence[Path] | None:
    """SQLite files this plugin keeps that a backup must hold (``eneca-bot db backup``).

    Called by the command on a loaded, not started, gateway: return the paths from your
    settings (a missing file is skipped). Each is copied with SQLite's online backup API,
    safe while the server runs. Leave out files rebuilt from elsewhere (an index).
    """


# --------------------------------------------------------------------------------------
# Providers: the first non-None result wins. Built-ins are ``trylast`` so yours win.
# --------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def conversation_store(gateway: Gateway) -> ConversationStore | None:
    """Provide the conversation store (memory). Stops at the first non-None result.

    Called once at start-up after every ``lifespan`` generator has reached its ``yield``,
    so a store opened there can be returned. With no provider the gateway keeps memory in
    process and logs a warning.

    :return: a :class:`core.contract.store.ConversationStore`, or ``None`` to let another plugin.
    """


@hookspec(firstresult=True)
def durable_backend(gateway: Gateway) -> Any | None:
    """Provide the inbox/outbox of durable channels. Stops at the first non-None result.

    Called once at start-up after every ``lifespan`` has started. The object has the
    public methods of :class:`core.durable.sqlite.DurableQueue` (``open``, ``close``,
    ``accept``, ``purge``, ``unanswered``, ``answer``, ``schedule``,
    ``save_progress``, ``mark_delivered``, ``mark_retry``, ``mark_failed``,
    ``forget_channel``, ``stats``, ``delivery_latencies``). A backend shared by several
    processes may also have ``attach(requeue, wake_outbox, cleared)``: the gateway then
    hands it callbacks to queue messages taken over from a stopped process, to wake the
    outbox, and to tell this process's plugins about a session another process cleared.
    With no provider the gateway keeps them in SQLite (``DATA_DIR/gateway.db``).

    :return: the backend, or ``None`` to let another plugin.
    """


@hookspec(firstresult=True)
def message_bus(gateway: Gateway, handler: Any) -> MessageBus | None:
    """Provide the message bus. Stops at the first non-None result.

    Called once at start-up after every ``lifespan`` has started, with ``handler``: the
    gateway's ``async handler(message, handle) -> Reply`` that answers one message. The
    bus runs it once per message, one at a time per conversation, in arrival order (a
    cluster bus across processes too). With no provider the gateway uses the in-process
    ``InProcessBus`` (exported from ``core``, as ``MessageBus`` is).

    :return: a ``MessageBus``, or ``None`` to let another plugin.
    """


@hookspec(firstresult=True)
def rate_limit_backend(gateway: Gateway) -> RateLimitBackend | None:
    """Provide the counters of the rate limits. Stops at the first non-None result.

    Called once at start-up after every ``lifespan`` has started. The object has the
    methods of :class:`core.contract.ratelimit.RateLimitBackend`: ``take_token`` (the
    ``RATE_LIMIT_PER_MINUTE`` bucket behind ``gateway.check_rate``), ``take_windows`` (the
    public-traffic limits per visitor and per IP) and ``state`` (shown by ``/health``
    under ``rate_limits``). A backend shared by several processes makes the limits hold
    for the whole cluster; it must answer (fail open) when its store is away, never
    raise. With no provider each process counts in its own memory.

    :return: the backend, or ``None`` to let another plugin.
    """


@hookspec(firstresult=True)
def agent(gateway: Gateway) -> Agent | None:
    """Provide the agent that answers messages. Stops at the first non-None result.

    Called once at start-up after every ``lifespan`` has started. With no provider every
    message gets the configured fallback text with error code ``no_agent``.

    :return: a :class:`core.contract.agent.Agent`, or ``None`` to let another plugin.
    """


@hookspec(firstresult=True)
def knowledge_search(gateway: Gateway, query: str, limit: int) -> Sequence[Passage] | None:
    """Search the knowledge base. Stops at the first non-None result.

    Called by the agent (as a tool the model uses, or to build context) and by
    ``eneca-bot kb search``. May be ``async``.

    :return: up to ``limit`` :class:`core.contract.knowledge.Passage` values, best first, or
        ``None`` when this plugin has no knowledge base.
    """


@hookspec
def agent_tools(gateway: Gateway, message: Message) -> Sequence[Tool] | None:
    """Offer tools to the model for this message.

    Called for every message before the agent runs; results from all plugins are joined.
    A channel can offer a tool only for its own messages (TalkMe offers
    ``transfer_to_operator``). A tool's handler may return an ``action`` that ends up in
    ``Reply.actions`` for the channel to carry out.

    :return: a list of :class:`core.contract.agent.Tool`.
    """


@hookspec
def health_check(gateway: Gateway) -> Check | Sequence[Check] | None:
    """Report this plugin's health for ``GET /health``. May be ``async``.

    Called on every health request. Any check with ``ok=False`` makes the gateway
    ``degraded`` (HTTP 503). Keep it cheap: it must not call paid APIs.

    :return: a :class:`core.contract.health.Check` or a list of them.
    """


# --------------------------------------------------------------------------------------
# Events: every implementation is called; one that raises is logged and skipped.
# --------------------------------------------------------------------------------------


@hookspec
def message_received(gateway: Gateway, message: Message) -> None:
    """A message is about to be answered.

    Fires in the conversation's lane, after the user turn is stored and before the agent
    runs; the agent waits until every implementation has returned. For observers: stats,
    logging, moderation flags. An implementation that raises is logged with its plugin's
    name; the message is still answered.
    """


@hookspec
def reply_ready(gateway: Gateway, reply: Reply) -> None:
    """The agent's final reply (or a fallback, with ``reply.error`` set) exists.

    Fires once per message, in the conversation's lane, after the assistant turn is
    stored. Request/response channels already hold the reply through the handle they
    got from ``gateway.publish``; durable channels deliver through ``deliver_reply``.
    Observers use it for stats and logs.
    """


@hookspec
def session_cleared(gateway: Gateway, event: SessionCleared) -> None:
    """A conversation, or all conversations of a channel, was forgotten.

    Fires after the store has removed the turns (``gateway.clear_session``). Channels drop
    their own per-conversation state (debounce buffers, typing timers).
    """


@hookspec(firstresult=True)
def deliver_reply(
    gateway: Gateway, reply: Reply, attempt: int, progress: DeliveryProgress
) -> DeliveryResult | None:
    """Send one reply of a durable channel to its provider. Stops at the first non-None.

    Called by the gateway's outbox for replies to messages published with
    ``durable=True``, one at a time per conversation, in order; ``attempt`` counts from 1.
    Return ``None`` when ``reply.channel`` is not yours. The outbox retries a
    ``DeliveryResult.retry(...)`` with backoff (honouring its ``retry_after``), gives up on
    ``DeliveryResult.failed(...)``, and never sends a ``DeliveryResult.delivered()`` reply
    again, also across restarts. When one reply takes several provider calls (parts of a
    long text, a "finish"), record each confirmed call with ``await progress.save(...)``
    and, on a retry, resume after what ``progress.get(...)`` says was sent: the state is
    kept on the reply's outbox row, so nothing confirmed is sent twice. May be ``async``.

    :return: a :class:`core.contract.delivery.DeliveryResult`, or ``None``.
    """
