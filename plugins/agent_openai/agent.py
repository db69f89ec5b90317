"""The chat loop: messages to the model, tool rounds, streaming, and the safe fallback.

:class:`OpenAIAgent` implements :class:`core.contract.agent.Agent`. ``respond`` never raises
(except ``CancelledError``, which closes the upstream request at once) and never returns
an empty text: when the model fails it answers from the knowledge base or with the
fallback text (``AGENT_FALLBACK_TEXT_RU``/``_EN``), and sets ``Reply.error`` so no half
reply is stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from loguru import logger

from core import AgentRequest, ChunkSink, Message, Reply, ReplyError, Tool
from core.tracing import genai
from plugins.agent_openai.diagnosis import describe_failure
from plugins.agent_openai.fallback import (
    EmptyReplyError,
    StreamCutError,
    best_passage,
    can_hand_over,
    classify,
    fallback_text,
    knowledge_answer,
    no_match_text,
    refused_or_dropped,
)
from plugins.agent_openai.model import OpenAIModel
from plugins.agent_openai.prompt import chat_messages, with_context
from plugins.agent_openai.settings import OpenAIAgentSettings
from plugins.agent_openai.tools import (
    Search,
    format_passages,
    knowledge_tool,
    run_tool_call,
    tool_specs,
    traced_search,
)
from plugins.agent_openai.wire import RoundResult, StreamReader, completion_result


class _ChunkCounter:
    """Wraps the chunk sink to know whether anything was streamed already."""

    def __init__(self, sink: ChunkSink) -> None:
        self._sink = sink
        self.sent = 0

    async def __call__(self, text: str) -> None:
        if text:
            self.sent += 1
            await self._sink(text)


class OpenAIAgent:
    """Answers messages with an OpenAI-compatible model, or from the knowledge base."""

    def __init__(
        self,
        settings: OpenAIAgentSettings,
        model: OpenAIModel | None,
        search: Search,
        system_prompt: str,
    ) -> None:
        self.settings = settings
        self.model = model
        self.search = traced_search(search)
        #: server.address / server.port of the model spans.
        self._server = urlsplit(model.base_url) if model is not None else None
        self.system_prompt = system_prompt
        self.requests = 0
        self.failures = 0
        self.last_error: dict[str, Any] | None = None
        #: Model failures since the last success: ``/health`` says degraded past a limit.
        self.consecutive_failures = 0
        #: Ask for usage in streams until the server says it does not know the option.
        self._stream_usage = True

    # -- the Agent protocol -------------------------------------------------------------

    async def respond(self, request: AgentRequest, on_chunk: ChunkSink) -> Reply:
        sink = _ChunkCounter(on_chunk)
        self.requests += 1
        if self.model is None:
            return await self._knowledge_only(request, sink)
        try:
            reply = await self._converse(request, sink)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = classify(exc)
            self.failures += 1
            self.consecutive_failures += 1
            self.last_error = {"code": error.code, "at": time.time()}
            logger.warning(
                "model failed for conversation {} ({}): {}",
                request.message.conversation_id,
                error.code,
                describe_failure(exc, self.model.base_url),
            )
            return await self._fallback(request, sink, error)
        self.consecutive_failures = 0
        return reply

    @property
    def degraded(self) -> bool:
        """``AGENT_DEGRADED_AFTER`` model failures in a row (and no success since)."""
        limit = self.settings.agent_degraded_after
        return limit > 0 and self.consecutive_failures >= limit

    def status(self) -> Mapping[str, Any]:
        return {
            "configured": self.model is not None,
            "model": self.settings.openai_model if self.model is not None else None,
            "base_url": self.model.base_url if self.model is not None else None,
            "knowledge_mode": self.settings.knowledge_mode,
            "requests": self.requests,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
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
                with genai.tool_call(call.name, call.id) as tool_span:
                    outcome = await run_tool_call(call, tools, message)
                    if outcome.action:
                        tool_span.set_attribute("eneca.tool.action", outcome.action)
                logger.debug("tool {} called (round {})", call.name, round_number + 1)
                if outcome.action:
                    actions.append(outcome.action)
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": outcome.content}
                )
        text = "".join(texts)
        if not text.strip():
            if actions:  # e.g. a hand-over to an operator with nothing to say
                text = fallback_text(self.settings, message.text)
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

    def _model_call(self, stream: bool) -> genai.ModelCall | genai.NoopModelCall:
        """The GenAI span of one request to the model (free when tracing is off)."""
        server = self._server
        return genai.model_call(
            self.settings.openai_model,
            server_address=server.hostname if server is not None else None,
            server_port=server.port if server is not None else None,
            temperature=self.settings.openai_temperature,
            max_tokens=self.settings.openai_max_tokens,
            stream=stream,
        )

    @staticmethod
    def _finish(call: genai.ModelCall | genai.NoopModelCall, result: RoundResult) -> None:
        call.finish(
            response_model=result.model,
            finish_reasons=(result.finish_reason,) if result.finish_reason else (),
            input_tokens=result.usage.get("prompt_tokens"),
            output_tokens=result.usage.get("completion_tokens"),
        )
        call.completion(result.text, [tool_call.name for tool_call in result.tool_calls])

    async def _whole_round(
        self, messages: list[dict[str, Any]], tools: Mapping[str, Tool]
    ) -> RoundResult:
        assert self.model is not None
        with self._model_call(stream=False) as call:
            call.prompt(messages)
            result = completion_result(await self.model.create_chat(self._params(messages, tools)))
            self._finish(call, result)
        return result

    async def _stream_round(
        self, messages: list[dict[str, Any]], tools: Mapping[str, Tool], sink: _ChunkCounter
    ) -> RoundResult:
        with self._model_call(stream=True) as call:
            call.prompt(messages)
            result = await self._stream_round_in(messages, tools, sink, call)
            self._finish(call, result)
        return result

    async def _stream_round_in(
        self,
        messages: list[dict[str, Any]],
        tools: Mapping[str, Tool],
        sink: _ChunkCounter,
        call: genai.ModelCall | genai.NoopModelCall,
    ) -> RoundResult:
        assert self.model is not None
        openai = await self.model.sdk()  # its error types
        params = self._params(messages, tools)
        if self._stream_usage:
            params["stream_options"] = {"include_usage": True}
        try:
            stream = await self.model.stream_chat(params)
        except openai.BadRequestError as exc:
            if "stream_options" not in str(exc) or not self._stream_usage:
                raise
            # Some compatible servers reject stream_options: stream without usage from now on.
            logger.warning("the model server rejects stream_options; streaming without usage")
            self._stream_usage = False
            params.pop("stream_options")
            stream = await self.model.stream_chat(params)
        reader = StreamReader()
        try:
            async for chunk in stream:
                text = reader.feed(chunk)
                if text:
                    call.first_chunk()
                    await sink(text)
        except openai.APITimeoutError as exc:
            if refused_or_dropped(exc):  # aiohttp's word for a cut connection
                raise StreamCutError(str(exc)) from exc
            raise
        except openai.APIConnectionError as exc:
            raise StreamCutError(str(exc)) from exc
        finally:
            await stream.close()
        if not reader.finished:
            raise StreamCutError("the stream ended without a finish reason")
        return reader.result()

    # -- without the model --------------------------------------------------------------

    async def _knowledge_only(self, request: AgentRequest, sink: _ChunkCounter) -> Reply:
        """The designed no-LLM mode: the best passage, marked, as a successful reply."""
        message = request.message
        if self.settings.knowledge_mode == "off":
            return await self._fallback(
                request,
                sink,
                ReplyError("llm_not_configured", "no language model or knowledge base is set"),
            )
        try:
            passage = best_passage(await self.search(message.text, 1))
        except Exception as exc:
            logger.warning("knowledge search failed: {}", exc)
            passage = None
        if passage is None:
            handover = can_hand_over(self.settings, request.tools)
            text = no_match_text(self.settings, message.text, handover)
            metadata = {"source": "knowledge_base"}
        else:
            text = knowledge_answer(passage, message.text)
            metadata = {
                "source": "knowledge_base",
                "document": passage.source,
                "citation": passage.citation,
            }
        if message.stream:
            await sink(text)
        return Reply(message.conversation_id, message.channel, text, message, metadata=metadata)

    async def _fallback(
        self, request: AgentRequest, sink: _ChunkCounter, error: ReplyError
    ) -> Reply:
        """The knowledge-base answer or the apology, with ``error`` set."""
        message = request.message
        text = fallback_text(
            self.settings, message.text, can_hand_over(self.settings, request.tools)
        )
        metadata: dict[str, Any] = {"source": "fallback"}
        if self.settings.knowledge_mode != "off":
            try:
                passage = best_passage(await self.search(message.text, 1))
            except Exception as exc:
                logger.warning("knowledge search failed during fallback: {}", exc)
                passage = None
            if passage is not None:
                text = knowledge_answer(passage, message.text)
                metadata = {
                    "source": "knowledge_base",
                    "document": passage.source,
                    "citation": passage.citation,
                }
        if message.stream and not sink.sent:
            await sink(text)
        return Reply(
            message.conversation_id, message.channel, text, message, error=error, metadata=metadata
        )
