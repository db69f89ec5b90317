"""The request and response bodies of the HTTP API.

The same models validate requests and describe them in ``/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Json,
    RootModel,
    StrictInt,
    StringConstraints,
)

from core import NOT_BLANK, ErrorDetail

#: Request headers of the HTTP API, as ``/openapi.json`` describes them.
VISITOR_TOKEN_DOC = {
    "X-Visitor-Token": (
        "With a public key: the token a previous answer returned (header and "
        "`visitor_token`); names the visitor whose threads these are. Without it a new "
        "visitor starts."
    )
}
IDEMPOTENCY_KEY_DOC = {
    "Idempotency-Key": (
        "Makes a retry safe: the same key with the same request returns the first answer "
        "(`Idempotent-Replayed: true`) instead of asking again; a different request under "
        "the key is 422 `idempotency_key_reused`.",
        # The server takes any printable text up to 200 characters; HTTP headers are ASCII.
        {"type": "string", "maxLength": 200, "pattern": "^[ -~]*$"},
    )
}


def _normalise_id(value: Any) -> Any:
    """Ids may come as numbers (n8n expressions, Telegram chat ids); ``""`` means absent."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value == "":
        return None
    return value


def _not_blank(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


IdText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
#: A string id, or an integer (made a string first, so the ``StrictInt`` branch only
#: tells /openapi.json that numbers are accepted); an optional one may also be ``""``.
Id = Annotated[IdText | StrictInt, BeforeValidator(_normalise_id)]
OptionalId = Annotated[IdText | StrictInt | Literal[""] | None, BeforeValidator(_normalise_id)]
#: Not blank; ``NOT_BLANK`` says so in /openapi.json (the validator answers the same).
MessageText = Annotated[str, BeforeValidator(_not_blank), Field(min_length=1, pattern=NOT_BLANK)]


class ChatRequest(BaseModel):
    """One user message. The conversation is ``thread_id``, else ``chat_id``, else new."""

    model_config = ConfigDict(extra="ignore")

    message: MessageText = Field(description="The user's text.")
    user_id: OptionalId = None
    chat_id: OptionalId = None
    thread_id: OptionalId = Field(None, description="Continue this conversation.")
    metadata: dict[str, Any] | None = Field(None, description="Passed to the agent as is.")


class ChatResponse(BaseModel):
    """The reply. ``success`` is false (and ``error`` set) when a fallback text was sent."""

    response: str
    thread_id: str
    user_id: str | None
    chat_id: str | None
    success: bool
    error: ErrorDetail | None
    visitor_token: str | None = Field(
        None,
        description="With a public key: who this visitor is; send it back in X-Visitor-Token.",
    )


class StreamEvent(BaseModel):
    """One ``data:`` event of ``/api/chat/stream``: ``metadata``, then ``chunk`` events,
    then ``done`` (or ``error``)."""

    type: Literal["metadata", "chunk", "done", "error"]
    thread_id: str | None = None
    user_id: str | None = None
    chat_id: str | None = None
    visitor_token: str | None = Field(None, description="metadata, with a public key.")
    content: str | None = Field(None, description="chunk: the next piece of text.")
    response: str | None = Field(None, description="done: the whole reply.")
    usage: dict[str, int] | None = Field(None, description="done: token counts, if known.")
    code: str | None = Field(None, description="error: a machine-readable code.")
    message: str | None = Field(None, description="error: what went wrong.")


class StreamItem(BaseModel):
    """One Server-Sent Event of ``/api/chat/stream`` as a client parses it: ``data`` is
    a JSON :class:`StreamEvent` (ping comments are not events)."""

    event: str | None = None
    data: Json[StreamEvent]
    id: str | None = None
    retry: int | None = None


class StoredMessage(BaseModel):
    """One stored turn of a thread."""

    role: Literal["user", "assistant", "system", "tool"]
    content: str
    created_at: float = Field(description="Unix time in seconds.")
    channel: str
    user_id: str | None


class ThreadMessages(BaseModel):
    """A thread's history, oldest first (empty for an unknown thread)."""

    success: bool = True
    thread_id: str
    messages: list[StoredMessage]


class ThreadInfo(BaseModel):
    thread_id: str
    channel: str
    turns: int
    last_activity: float = Field(description="Unix time in seconds.")


class ThreadList(BaseModel):
    """The caller's threads, most recently active first."""

    success: bool = True
    threads: list[ThreadInfo]
    limit: int
    offset: int


class ThreadCleared(BaseModel):
    success: bool = True
    thread_id: str
    removed: int = Field(description="How many stored turns were removed.")


class DebugEcho(BaseModel):
    """What ``/api/debug`` received, secrets masked."""

    success: bool = True
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class DebugRequest(RootModel[Any]):
    """Any JSON body: ``/api/debug`` echoes it."""


class N8nChatRequest(BaseModel):
    """What the ``@n8n/chat`` widget posts."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["sendMessage", "loadPreviousSession"]
    sessionId: Id  # the widget's field name
    chatInput: str | None = None  # the widget's field name
    metadata: dict[str, Any] | None = None


class N8nSendMessage(BaseModel):
    """``sendMessage``: ``chatInput`` is the user's text (not blank)."""

    action: Literal["sendMessage"]
    sessionId: Id
    chatInput: Annotated[str, Field(min_length=1, pattern=NOT_BLANK)]
    metadata: dict[str, Any] | None = None


class N8nLoadPreviousSession(BaseModel):
    """``loadPreviousSession``: the stored history of ``sessionId``."""

    action: Literal["loadPreviousSession"]
    sessionId: Id
    chatInput: str | None = None
    metadata: dict[str, Any] | None = None


class N8nChatRequestDoc(
    RootModel[Annotated[N8nSendMessage | N8nLoadPreviousSession, Field(discriminator="action")]]
):
    """What ``/api/n8n/chat`` accepts, per action, for /openapi.json (the handler validates
    with :class:`N8nChatRequest` and its own check of ``chatInput``; both agree)."""


class N8nSendResponse(BaseModel):
    """``sendMessage``: the widget shows ``output``."""

    output: str


class N8nMessageKwargs(BaseModel):
    content: str
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)


class N8nStoredMessage(BaseModel):
    """A LangChain-serialised message, as n8n's chat memory returns it: the widget shows
    ``kwargs.content`` and treats an ``id`` containing ``HumanMessage`` as the user's."""

    lc: int = 1
    type: str = "constructor"
    id: list[str]
    kwargs: N8nMessageKwargs


class N8nHistory(BaseModel):
    """``loadPreviousSession``: the stored history, oldest first."""

    data: list[N8nStoredMessage]


class N8nChatResponse(RootModel[N8nSendResponse | N8nHistory]):
    """``sendMessage`` answers :class:`N8nSendResponse`, ``loadPreviousSession``
    :class:`N8nHistory`."""
