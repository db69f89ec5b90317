"""The agent: what turns a message and its history into a reply.

An agent plugin returns an :class:`Agent` from the ``agent`` hook. Tools that other
plugins offer the model (``agent_tools`` hook) are :class:`Tool` values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from core.contract.events import Message, Reply
from core.contract.store import Turn

#: Called with each piece of text as the agent produces it.
ChunkSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returns to the model, plus an optional action for the channel."""

    content: str
    action: str | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call. ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    handler: Callable[[Mapping[str, Any], Message], Awaitable[ToolResult]]


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """Everything the agent gets for one message."""

    message: Message
    #: Recent turns, oldest first; the last one is ``message`` itself.
    history: Sequence[Turn]
    tools: Sequence[Tool] = field(default_factory=tuple)


@runtime_checkable
class Agent(Protocol):
    """Answers one message. Must return a :class:`Reply` (a fallback one on failure)."""

    async def respond(self, request: AgentRequest, on_chunk: ChunkSink) -> Reply:
        """Produce the reply, calling ``on_chunk`` with each text delta when streaming.

        Cancellation (the asking client went away) must stop upstream work promptly.
        """

    def status(self) -> Mapping[str, Any]:
        """Health figures: configured, model, last error..."""
