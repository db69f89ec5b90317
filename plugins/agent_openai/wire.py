"""The model's replies read as plain JSON, without the SDK's pydantic models.

The ``openai`` client still sends the request (auth, retries, timeouts, error types) and
splits the server-sent events; this module only reads the decoded JSON: a whole
completion, or one stream chunk at a time. Building an SDK model per chunk cost more CPU
than the rest of the gateway (about 11 ms per 30-token streamed reply). Anything that is
not the documented shape raises :class:`~plugins.agent_openai.fallback.MalformedResponseError`
(``llm_bad_response``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugins.agent_openai.fallback import EmptyReplyError, MalformedResponseError
from plugins.agent_openai.tools import ToolCall

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(slots=True)
class RoundResult:
    """What one request to the model produced."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    #: What the server says it ran, and why it stopped (for the trace; may be empty).
    model: str = ""
    finish_reason: str = ""


def add_usage(total: dict[str, int], usage: object) -> None:
    """Add a ``usage`` object's token counts to ``total`` (absent or null: nothing)."""
    if usage is None:
        return
    if not isinstance(usage, dict):
        raise MalformedResponseError("usage is not an object")
    for key in USAGE_KEYS:
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedResponseError(f"{what} is not a string")
    return value


def _label(value: object) -> str:
    """A model name or finish reason, for the trace only: anything odd is just left out."""
    return value[:200] if isinstance(value, str) else ""


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedResponseError(f"{what} is not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedResponseError(f"{what} is not a list")
    return value


def completion_result(completion: object) -> RoundResult:
    """A whole (non-streamed) chat completion as a :class:`RoundResult`."""
    completion = _object(completion, "the response")
    choices = _list(completion.get("choices"), "choices")
    if not choices:
        raise EmptyReplyError("the model returned no choices")
    choice = _object(choices[0], "a choice")
    answer = _object(choice.get("message"), "the message")
    result = RoundResult(
        text=_text(answer.get("content"), "the message content"),
        model=_label(completion.get("model")),
        finish_reason=_label(choice.get("finish_reason")),
    )
    for number, call in enumerate(_list(answer.get("tool_calls"), "tool_calls")):
        function = _object(call, "a tool call").get("function")
        if function is None:
            continue
        function = _object(function, "a tool call's function")
        result.tool_calls.append(
            ToolCall(
                _text(call.get("id"), "a tool call id") or f"call_{number}",
                _text(function.get("name"), "a tool name"),
                _text(function.get("arguments"), "tool arguments"),
            )
        )
    add_usage(result.usage, completion.get("usage"))
    return result


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class StreamReader:
    """Reads a chat completion stream chunk by chunk into one :class:`RoundResult`.

    Tool calls arrive in pieces keyed by ``index``: the id and name once, the arguments
    split over many chunks. Usage may come in its own chunk with no choices.
    """

    __slots__ = ("_pending", "_pieces", "finish_reason", "finished", "model", "usage")

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._pending: dict[int, _PendingCall] = {}
        self.usage: dict[str, int] = {}
        #: The model said why it stopped (a stream without it was cut off).
        self.finished = False
        self.finish_reason = ""
        self.model = ""

    def feed(self, chunk: object) -> str:
        """Take one decoded chunk; returns its new text ("" when it has none)."""
        if type(chunk) is not dict:
            raise MalformedResponseError("a stream chunk is not an object")
        usage = chunk.get("usage")
        if usage is not None:
            add_usage(self.usage, usage)
        if not self.model:
            self.model = _label(chunk.get("model"))
        choices = chunk.get("choices")
        if not choices:
            if choices is not None and not isinstance(choices, list):
                raise MalformedResponseError("choices is not a list")
            return ""
        if not isinstance(choices, list):
            raise MalformedResponseError("choices is not a list")
        choice = choices[0]
        if type(choice) is not dict:
            raise MalformedResponseError("a choice is not an object")
        reason = choice.get("finish_reason")
        if reason:
            self.finished = True
            self.finish_reason = _label(reason)
        delta = choice.get("delta")
        if not delta:
            return ""
        if type(delta) is not dict:
            raise MalformedResponseError("a delta is not an object")
        parts = delta.get("tool_calls")
        if parts:
            self._add_tool_parts(parts)
        content = delta.get("content")
        if not content:
            return ""
        if type(content) is not str:
            raise MalformedResponseError("the delta content is not a string")
        self._pieces.append(content)
        return content

    def _add_tool_parts(self, parts: object) -> None:
        for position, part in enumerate(_list(parts, "tool_calls")):
            part = _object(part, "a tool call")
            index = part.get("index")
            if not isinstance(index, int):
                index = position
            call = self._pending.get(index)
            if call is None:
                call = self._pending[index] = _PendingCall()
            call_id = _text(part.get("id"), "a tool call id")
            if call_id:
                call.id = call_id
            function = part.get("function")
            if function is not None:
                function = _object(function, "a tool call's function")
                name = _text(function.get("name"), "a tool name")
                if name and not call.name:
                    call.name = name
                call.arguments += _text(function.get("arguments"), "tool arguments")

    def result(self) -> RoundResult:
        """Everything read so far, with tool calls in ``index`` order."""
        return RoundResult(
            text="".join(self._pieces),
            tool_calls=[
                ToolCall(call.id or f"call_{index}", call.name, call.arguments)
                for index, call in sorted(self._pending.items())
                if call.name
            ],
            usage=self.usage,
            model=self.model,
            finish_reason=self.finish_reason,
        )
