"""Answers without the model: from the knowledge base alone, or a fixed apology.

Used when no model is configured (the designed "knowledge base only" mode, a success) and
when the model fails after its retries (then the reply carries an error code).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from types import ModuleType

import aiohttp
from pydantic import ValidationError

from core import Passage, ReplyError, Tool
from plugins.agent_openai.settings import OpenAIAgentSettings

_CYRILLIC = re.compile("[\u0400-\u04ff]")


class StreamCutError(Exception):
    """The model's stream ended or broke before it said it was finished."""


class MalformedResponseError(ValueError):
    """The model's JSON is not shaped like a chat completion (or a chunk of one)."""


class EmptyReplyError(Exception):
    """The model answered with no text and no usable tool call."""


def is_russian(text: str) -> bool:
    return bool(_CYRILLIC.search(text))


def knowledge_answer(passage: Passage, question: str) -> str:
    """The best passage, marked as coming from the knowledge base and naming its source."""
    where = passage.citation
    if passage.source and passage.source not in where:
        where = f"{where}, {passage.source}"
    if is_russian(question):
        return f"Из базы знаний ({where}):\n\n{passage.text}"
    return f"From the knowledge base ({where}):\n\n{passage.text}"


def can_hand_over(settings: OpenAIAgentSettings, tools: Sequence[Tool]) -> bool:
    """Whether the channel offers a tool that hands the conversation to an operator."""
    names = {name.strip() for name in settings.agent_handover_tools.split(",") if name.strip()}
    return any(tool.name in names for tool in tools)


def _with_hint(text: str, hint: str, handover: bool) -> str:
    return f"{text} {hint}".strip() if handover and hint.strip() else text


def no_match_text(settings: OpenAIAgentSettings, question: str, handover: bool = False) -> str:
    """What the knowledge-only mode says when nothing matches, in the visitor's language."""
    if is_russian(question):
        text, hint = settings.knowledge_not_found_text_ru, settings.agent_handover_hint_ru
    else:
        text, hint = settings.knowledge_not_found_text_en, settings.agent_handover_hint_en
    return _with_hint(text, hint, handover)


def fallback_text(settings: OpenAIAgentSettings, question: str, handover: bool = False) -> str:
    """The apology when the model fails and the knowledge base has nothing relevant."""
    if settings.agent_fallback_text and settings.agent_fallback_text.strip():
        return settings.agent_fallback_text
    if is_russian(question):
        text, hint = settings.agent_fallback_text_ru, settings.agent_handover_hint_ru
    else:
        text, hint = settings.agent_fallback_text_en, settings.agent_handover_hint_en
    return _with_hint(text, hint, handover)


def best_passage(passages: Sequence[Passage]) -> Passage | None:
    return passages[0] if passages else None


def refused_or_dropped(exc: BaseException) -> bool:
    """The SDK's aiohttp transport reports a refused or dropped connection as a connect
    *timeout*; its cause says what really happened."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
            cause, aiohttp.ServerTimeoutError | TimeoutError
        ):
            return True
        cause = cause.__cause__
    return False


def classify(exc: BaseException) -> ReplyError:
    """The reply error code for a failure of the model (after the client's retries)."""
    # The SDK is imported on the first model request: before that, no error is the SDK's.
    sdk = sys.modules.get("openai")
    error = None if sdk is None else _classify_sdk_error(exc, sdk)
    if error is not None:
        return error
    if isinstance(exc, TimeoutError):
        return ReplyError("llm_timeout", "the language model did not answer in time")
    if isinstance(exc, StreamCutError):
        return ReplyError("llm_bad_response", "the language model's stream was cut off")
    if isinstance(
        exc, json.JSONDecodeError | ValidationError | EmptyReplyError | MalformedResponseError
    ):
        return ReplyError("llm_bad_response", "the language model sent a malformed response")
    return ReplyError("llm_error", f"the language model call failed ({type(exc).__name__})")


def _classify_sdk_error(exc: BaseException, openai: ModuleType) -> ReplyError | None:
    if isinstance(exc, openai.APITimeoutError):
        if refused_or_dropped(exc):
            return ReplyError("llm_unavailable", "the language model is unavailable")
        return ReplyError("llm_timeout", "the language model did not answer in time")
    if isinstance(exc, openai.RateLimitError):
        return ReplyError("llm_rate_limited", "the language model is rate limited")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return ReplyError("llm_auth_failed", "the language model rejected the API key")
    if isinstance(exc, openai.APIConnectionError | openai.InternalServerError):
        return ReplyError("llm_unavailable", "the language model is unavailable")
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return ReplyError("llm_unavailable", "the language model is unavailable")
        return ReplyError(
            "llm_request_rejected", f"the language model rejected the request ({exc.status_code})"
        )
    if isinstance(exc, openai.APIResponseValidationError | openai.APIError):
        return ReplyError("llm_bad_response", "the language model sent a malformed response")
    return None
