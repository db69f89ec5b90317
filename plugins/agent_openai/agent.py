"""The chat loop: messages to the model, tool rounds, streaming, and the safe fallback.

:class:`OpenAIAgent` implements :class:`core.agent.Agent`. ``respond`` never raises
(except ``CancelledError``, which closes the upstream request at once) and never returns
an empty text: when the model fails it answers from the knowledge base or with
``AGENT_FALLBACK_TEXT``, and sets ``Reply.error`` so no half reply is stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from loguru import logger

from core.agent import AgentRequest, ChunkSink, Tool
from core.events import Message, Reply, ReplyError
from plugins.agent_openai.client import create_chat, public_url
from plugins.agent_openai.fallback import (
    EmptyReplyError,
    StreamCutError,
    best_passage,
    classify,
    knowledge_answer,
    no_match_text,
)
from plugins.agent_openai.prompt import chat_messages, with_context
from plugins.agent_openai.settings import OpenAIAgentSettings
from plugins.agent_openai.tools import (
    Search,
    ToolCall,
    format_passages,
    knowledge_tool,
    run_tool_call,
    tool_specs,
)


@dataclass(slots=True)
class RoundResult:
    """What one request to the model produced."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class _ChunkCounter:
    """Wraps the chunk sink to know whether anything was streamed already."""

    def __init__(self, sink: ChunkSink) -> None:
        self._sink = sink
        self.sent = 0

    async def __call__(self, text: str) -> None:
        if text:
            self.sent += 1
            await self._sink(text)


def _add_usage(total: dict[str, int], usage: Any) -> None:
    if usage is None:
        return
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(usage, key, None)
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


class OpenAIAgent:
    """Answers messages with an OpenAI-compatible model, or from the knowledge base."""

    def __init__(
        self,
        settings: OpenAIAgentSettings,
        client: openai.AsyncOpenAI | None,
        search: Search,
        system_prompt: str,
    ) -> None:
        self.settings = settings
        self.client = client
        self.search = search
        self.system_prompt = system_prompt
        self.requests = 0
        self.failures = 0
        self.last_error: dict[str, Any] | None = None
        #: Ask for usage in streams until the server says it does not know the option.
        self._stream_usage = True

    # -- the Agent protocol -------------------------------------------------------------

    async def respond(self, request: AgentRequest, on_chunk: ChunkSink) -> Reply:
        sink = _ChunkCounter(on_chunk)
        self.requests += 1
        if self.client is None:
            return await self._knowledge_only(request.message, sink)
        try:
            return await self._converse(request, sink)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = classify(exc)
            self.failures += 1
            self.last_error = {"code": error.code, "at": time.time()}
            logger.warning(
                "model failed for conversation {} ({}): {}: {}",
                request.message.conversation_id,
                error.code,
                type(exc).__name__,
                exc,
            )
            return await self._fallback(request.message, sink, error)

    def status(self) -> Mapping[str, Any]:
        return {
            "configured": self.client is not None,
            "model": self.settings.openai_model if self.client is not None else None,
            "base_url": public_url(self.client.base_url) if self.client is not None else None,
            "knowledge_mode": self.settings.knowledge_mode,
            "requests": self.requests,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    # -- with the model -----------------------------------------------------------------

    def _tools(self, request: AgentRequest) -> dict[str, Tool]:
        tools: dict[str, Tool] = {}
        if self.settings.knowledge_mode == "tool":
            tool = knowledge_tool(self.search, self.settings.knowledge_results)
            tools[tool.name] = tool
        for tool in request.tools:
            tools[tool.name] = tool
        return tools

    async def _system_prompt(self, message: Message) -> str:
        if self.settings.knowledge_mode != "context":
            return self.system_prompt
        passages = await self.search(message.text, self.settings.knowledge_results)
        return with_context(self.system_prompt, format_passages(passages) if passages else None)

    async def _converse(self, request: AgentRequest, sink: _ChunkCounter) -> Reply:
        message = request.message
        messages = chat_messages(
            await self._system_prompt(message),
            request.history,
            message,
            self.settings.agent_history_turns,
        )
        tools = self._tools(request)
        texts: list[str] = []
        actions: list[str] = []
        usage: dict[str, int] = {}
        max_rounds = self.settings.agent_max_tool_rounds
        for round_number in range(max_rounds + 1):
            offered = tools if round_number < max_rounds else {}
            if message.stream:
                result = await self._stream_round(messages, offered, sink)
            else:
                result = await self._whole_round(messages, offered)
            for key, value in result.usage.items():
                usage[key] = usage.get(key, 0) + value
            if result.text:
                texts.append(result.text)
            if not result.tool_calls or not offered:
                break
            messages.append(
                {
                    "role": "assistant",
                    "content": result.text or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                        for call in result.tool_calls
                    ],
                }
            )
            for call in result.tool_calls:
                outcome = await run_tool_call(call, tools, message)
                logger.debug("tool {} called (round {})", call.name, round_number + 1)
                if outcome.action:
                    actions.append(outcome.action)
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": outcome.content}
                )
        text = "".join(texts)
        if not text.strip():
            if actions:  # e.g. a hand-over to an operator with nothing to say
                text = self.settings.agent_fallback_text
            else:
                raise EmptyReplyError("the model returned no text")
        return Reply(
            message.conversation_id,
            message.channel,
            text,
            message,
            usage=usage or None,
            actions=tuple(dict.fromkeys(actions)),
            metadata={"source": "llm", "model": self.settings.openai_model},
        )

    def _params(self, messages: list[dict[str, Any]], tools: Mapping[str, Tool]) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.settings.openai_model, "messages": messages}
        if self.settings.openai_temperature is not None:
            params["temperature"] = self.settings.openai_temperature
        if self.settings.openai_max_tokens is not None:
            params["max_tokens"] = self.settings.openai_max_tokens
        if tools:
            params["tools"] = tool_specs(list(tools.values()))
        return params

    async def _whole_round(
        self, messages: list[dict[str, Any]], tools: Mapping[str, Tool]
    ) -> RoundResult:
        assert self.client is not None
        completion = await create_chat(self.client, self._params(messages, tools))
        if not completion.choices:
            raise EmptyReplyError("the model returned no choices")
        answer = completion.choices[0].message
        result = RoundResult(text=answer.content or "")
        for number, call in enumerate(answer.tool_calls or []):
            function = getattr(call, "function", None)
            if function is None:
                continue
            result.tool_calls.append(
                ToolCall(call.id or f"call_{number}", function.name, function.arguments or "")
            )
        _add_usage(result.usage, completion.usage)
        return result

    async def _stream_round(
        self, messages: list[dict[str, Any]], tools: Mapping[str, Tool], sink: _ChunkCounter
    ) -> RoundResult:
        assert self.client is not None
        params = self._params(messages, tools)
        if self._stream_usage:
            params["stream_options"] = {"include_usage": True}
        try:
            stream = await create_chat(self.client, params, stream=True)
        except openai.BadRequestError as exc:
            if "stream_options" not in str(exc) or not self._stream_usage:
                raise
            # Some compatible servers reject stream_options: stream without usage from now on.
            logger.warning("the model server rejects stream_options; streaming without usage")
            self._stream_usage = False
            params.pop("stream_options")
            stream = await create_chat(self.client, params, stream=True)
        result = RoundResult()
        pieces: list[str] = []
        pending: dict[int, _PendingCall] = {}
        finished = False
        try:
            async for chunk in stream:
                _add_usage(result.usage, chunk.usage)
                for choice in chunk.choices[:1]:
                    delta = choice.delta
                    if delta is not None and delta.content:
                        pieces.append(delta.content)
                        await sink(delta.content)
                    for part in (delta.tool_calls if delta is not None else None) or []:
                        call = pending.setdefault(part.index, _PendingCall())
                        if part.id:
                            call.id = part.id
                        if part.function is not None:
                            if part.function.name and not call.name:
                                call.name = part.function.name
                            call.arguments += part.function.arguments or ""
                    if choice.finish_reason:
                        finished = True
        except openai.APITimeoutError:
            raise
        except openai.APIConnectionError as exc:
            raise StreamCutError(str(exc)) from exc
        finally:
            await stream.close()
        if not finished:
            raise StreamCutError("the stream ended without a finish reason")
        result.text = "".join(pieces)
        result.tool_calls = [
            ToolCall(call.id or f"call_{index}", call.name, call.arguments)
            for index, call in sorted(pending.items())
            if call.name
        ]
        return result

    # -- without the model --------------------------------------------------------------

    async def _knowledge_only(self, message: Message, sink: _ChunkCounter) -> Reply:
        """The designed no-LLM mode: the best passage, marked, as a successful reply."""
        if self.settings.knowledge_mode == "off":
            return await self._fallback(
                message,
                sink,
                ReplyError("llm_not_configured", "no language model or knowledge base is set"),
            )
        try:
            passage = best_passage(await self.search(message.text, 1))
        except Exception as exc:
            logger.warning("knowledge search failed: {}", exc)
            passage = None
        if passage is None:
            text, metadata = no_match_text(message.text), {"source": "knowledge_base"}
        else:
            text = knowledge_answer(passage, message.text)
            metadata = {"source": "knowledge_base", "document": passage.source}
        if message.stream:
            await sink(text)
        return Reply(message.conversation_id, message.channel, text, message, metadata=metadata)

    async def _fallback(self, message: Message, sink: _ChunkCounter, error: ReplyError) -> Reply:
        """The knowledge-base answer or the apology, with ``error`` set."""
        text = self.settings.agent_fallback_text
        metadata: dict[str, Any] = {"source": "fallback"}
        if self.settings.knowledge_mode != "off":
            try:
                passage = best_passage(await self.search(message.text, 1))
            except Exception as exc:
                logger.warning("knowledge search failed during fallback: {}", exc)
                passage = None
            if passage is not None:
                text = knowledge_answer(passage, message.text)
                metadata = {"source": "knowledge_base", "document": passage.source}
        if message.stream and not sink.sent:
            await sink(text)
        return Reply(
            message.conversation_id, message.channel, text, message, error=error, metadata=metadata
        )
