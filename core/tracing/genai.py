"""Spans of an AI agent, after the OpenTelemetry GenAI semantic conventions.

- :func:`model_call`: one request to a model (``chat gpt-4o-mini``, kind client) with
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.response.finish_reasons``,
  ``gen_ai.usage.input_tokens`` / ``output_tokens`` and, for a stream,
  ``gen_ai.response.time_to_first_chunk`` (seconds).
- :func:`tool_call`: one tool the model called (``execute_tool search_knowledge_base``).
- :func:`agent_run`: the whole answer to one message (``invoke_agent eneca-bot``).

Prompts and completions are recorded only with ``OTEL_RECORD_CONTENT=true``, secrets
masked: as ``gen_ai.input.messages`` / ``gen_ai.output.messages`` on the span and as the
``gen_ai.content.prompt`` / ``gen_ai.content.completion`` events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from core import tracing
from core.tracing import NOOP_SPAN, Span, hashed

#: The provider name of any OpenAI-compatible server (vLLM, Ollama... speak its API).
OPENAI = "openai"


class NoopModelCall:
    """A model call when tracing is off: nothing is measured."""

    __slots__ = ()
    span: Span = NOOP_SPAN

    def __enter__(self) -> NoopModelCall:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def first_chunk(self) -> None:
        return None

    def finish(
        self,
        *,
        response_model: str | None = None,
        finish_reasons: Sequence[str] = (),
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        response_id: str | None = None,
    ) -> None:
        return None

    def prompt(self, messages: Sequence[Mapping[str, Any]]) -> None:
        return None

    def completion(self, text: str, tool_calls: Sequence[str] = ()) -> None:
        return None


NOOP_MODEL_CALL = NoopModelCall()


class ModelCall:
    """One model request as a span: enter it before sending, ``first_chunk()`` on the
    first streamed piece, ``finish(...)`` with what the response said."""

    __slots__ = ("_first", "_scope", "_started", "span")

    def __init__(self, scope: AbstractContextManager[Span]) -> None:
        self._scope = scope
        self._started = 0.0
        self._first = False
        self.span: Span = NOOP_SPAN

    def __enter__(self) -> ModelCall:
        self.span = self._scope.__enter__()
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, Exception):  # cancelled
            pass
        elif exc is not None:
            self.span.set_attribute("error.type", type(exc).__name__)
        self._scope.__exit__(exc_type, exc, traceback)

    def first_chunk(self) -> None:
        """The first piece of a streamed response arrived (call it for every piece: only
        the first counts)."""
        if not self._first:
            self._first = True
            self.span.set_attribute(
                "gen_ai.response.time_to_first_chunk", time.perf_counter() - self._started
            )

    def finish(
        self,
        *,
        response_model: str | None = None,
        finish_reasons: Sequence[str] = (),
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        response_id: str | None = None,
    ) -> None:
        span = self.span
        if response_model:
            span.set_attribute("gen_ai.response.model", response_model)
        if finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", list(finish_reasons))
        if input_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        if output_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if response_id:
            span.set_attribute("gen_ai.response.id", response_id)

    def prompt(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """The messages sent (recorded only with ``OTEL_RECORD_CONTENT=true``)."""
        active = tracing.active()
        if not active.record_content or not self.span.recording:
            return
        text = active.content(json.dumps(_input_messages(messages), ensure_ascii=False))
        if text is not None:
            self.span.set_attribute("gen_ai.input.messages", text)
            self.span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": text})

    def completion(self, text: str, tool_calls: Sequence[str] = ()) -> None:
        """The model's answer (recorded only with ``OTEL_RECORD_CONTENT=true``)."""
        active = tracing.active()
        if not active.record_content or not self.span.recording:
            return
        parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
        parts += [{"type": "tool_call", "name": name} for name in tool_calls]
        recorded = active.content(
            json.dumps([{"role": "assistant", "parts": parts}], ensure_ascii=False)
        )
        if recorded is not None:
            self.span.set_attribute("gen_ai.output.messages", recorded)
            self.span.add_event("gen_ai.content.completion", {"gen_ai.completion": recorded})


def _input_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat-completions messages in the conventions' shape: role and parts."""
    shaped: list[dict[str, Any]] = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        content = message.get("content")
        if isinstance(content, str) and content:
            kind = "tool_call_response" if message.get("role") == "tool" else "text"
            parts.append({"type": kind, "content": content})
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            parts.append({"type": "tool_call", "name": function.get("name"), "id": call.get("id")})
        shaped.append({"role": str(message.get("role", "user")), "parts": parts})
    return shaped


def model_call(
    model: str,
    *,
    operation: str = "chat",
    provider: str = OPENAI,
    server_address: str | None = None,
    server_port: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stream: bool = False,
) -> ModelCall | NoopModelCall:
    """A span around one model request (``with model_call("gpt-4o-mini") as call:``)."""
    active = tracing.active()
    if not active.enabled:
        return NOOP_MODEL_CALL
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,  # the name before semantic conventions 1.37; still read
        "gen_ai.request.model": model,
    }
    if server_address:
        attributes["server.address"] = server_address
    if server_port:
        attributes["server.port"] = server_port
    if temperature is not None:
        attributes["gen_ai.request.temperature"] = temperature
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    if stream:
        attributes["gen_ai.request.stream"] = True
    return ModelCall(active.span(f"{operation} {model}", kind="client", attributes=attributes))


def tool_call(name: str, call_id: str | None = None) -> AbstractContextManager[Span]:
    """A span around running one tool the model asked for."""
    active = tracing.active()
    if not active.enabled:
        return NOOP_SPAN
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": "function",
    }
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    return active.span(f"execute_tool {name}", attributes=attributes)


def agent_run(name: str, *, conversation_id: str | None = None) -> AbstractContextManager[Span]:
    """A span around an agent answering one message (``conversation_id`` hashed)."""
    active = tracing.active()
    if not active.enabled:
        return NOOP_SPAN
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": name,
    }
    if conversation_id is not None:
        attributes["gen_ai.conversation.id"] = hashed(conversation_id)
    return active.span(f"invoke_agent {name}", attributes=attributes)
