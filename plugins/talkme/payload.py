"""The webhook TalkMe posts for each visitor message, and how it becomes a core Message.

Only ``token`` and ``message.text`` are required. Every other field, known or not, is kept
(``extra="allow"``) and travels in ``Message.metadata["talkme"]``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from core import NOT_BLANK, Message

CHANNEL = "talkme"
#: Conversation ids of TalkMe visitors start with this, so they never collide with others.
CONVERSATION_PREFIX = "talkme:"
#: Metadata key of the X-Token; private to the channel (see core.contract.events.PRIVATE_PREFIX).
TOKEN_KEY = "_talkme_token"

#: TalkMe sends some ids as numbers, some as strings.
ProviderId = Annotated[StrictStr | StrictInt, Field(union_mode="left_to_right")]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TalkMeClient(_Lenient):
    """The visitor."""

    client_id: ProviderId | None = Field(None, alias="clientId")
    login: ProviderId | None = None
    search_id: ProviderId | None = Field(None, alias="searchId")
    #: Not needed to answer: kept as sent, whatever their type, and never a reason to refuse.
    name: Any = None
    phone: Any = None


#: In /openapi.json: a string with something other than whitespace (the validators
#: below refuse the rest with their own messages).
_NOT_BLANK_DOC = {"minLength": 1, "pattern": NOT_BLANK}
#: An id that names the visitor: a number, or a string that is not blank.
_VISITOR_ID_DOC = {"anyOf": [{"type": "string", "pattern": NOT_BLANK}, {"type": "integer"}]}
#: In /openapi.json: what :meth:`TalkMeWebhook.to_message` needs to know the visitor.
_VISITOR_REQUIRED_DOC = {
    "anyOf": [
        *(
            {
                "required": ["client"],
                "properties": {
                    "client": {
                        "type": "object",
                        "required": [name],
                        "properties": {name: _VISITOR_ID_DOC},
                    }
                },
            }
            for name in ("clientId", "login", "searchId")
        ),
        {
            "required": ["originalOnlineChatMessage"],
            "properties": {
                "originalOnlineChatMessage": {
                    "type": "object",
                    "required": ["dialogId"],
                    "properties": {
                        "dialogId": {
                            "anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]
                        }
                    },
                }
            },
        },
    ]
}


class TalkMeText(_Lenient):
    """The visitor's message."""

    text: StrictStr = Field(json_schema_extra=_NOT_BLANK_DOC)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class TalkMeOriginalMessage(_Lenient):
    """The online-chat message as TalkMe stored it; its ``id`` is the provider message id."""

    id: ProviderId | None = None
    #: Used as the message's ``chat_id`` when it is a string or a number; kept either way.
    dialog_id: Any = Field(None, alias="dialogId")


class TalkMeWebhook(_Lenient):
    """One visitor message as TalkMe posts it to the bot's webhook."""

    model_config = ConfigDict(json_schema_extra=_VISITOR_REQUIRED_DOC)

    token: StrictStr = Field(
        min_length=1,
        description="Bot session token; sent back as X-Token on replies",
        json_schema_extra={"pattern": NOT_BLANK},
    )
    client: TalkMeClient | None = None
    message: TalkMeText
    original_message: TalkMeOriginalMessage | None = Field(None, alias="originalOnlineChatMessage")
    #: The site the widget runs on (``{"id", "domain"}``); kept as sent.
    site: Any = None

    @field_validator("token")
    @classmethod
    def _token_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    def visitor_id(self) -> str | None:
        """The visitor: ``client.clientId``, else ``login``, else ``searchId``."""
        client = self.client
        if client is not None:
            for value in (client.client_id, client.login, client.search_id):
                if value is not None and str(value).strip():
                    return str(value).strip()
        return None

    def provider_message_id(self) -> str | None:
        if self.original_message is None or self.original_message.id is None:
            return None
        return str(self.original_message.id)

    def dialog_id(self) -> str | None:
        dialog = None if self.original_message is None else self.original_message.dialog_id
        if isinstance(dialog, bool) or not isinstance(dialog, str | int) or not str(dialog):
            return None
        return str(dialog)

    def to_message(self) -> Message:
        """The core message; raises ``ValueError`` when the visitor cannot be identified."""
        visitor = self.visitor_id()
        if visitor is None:
            dialog = self.dialog_id()
            if dialog is None:
                raise ValueError("client.clientId, client.login or client.searchId is required")
            visitor = f"dialog-{dialog}"
        return Message(
            conversation_id=conversation_id_for(visitor),
            channel=CHANNEL,
            text=self.message.text,
            user_id=visitor,
            chat_id=self.dialog_id(),
            message_id=self.provider_message_id(),
            metadata={
                CHANNEL: self.model_dump(
                    mode="json", by_alias=True, exclude_none=True, exclude={"token"}
                ),
                # Private (leading "_"): kept in the inbox to reply with, never in memory.
                TOKEN_KEY: self.token,
            },
        )


def conversation_id_for(visitor: str) -> str:
    """``talkme:<visitor>``; a value that already has the prefix is returned as is."""
    return visitor if visitor.startswith(CONVERSATION_PREFIX) else CONVERSATION_PREFIX + visitor


def token_of(message: Message) -> str | None:
    """The X-Token a reply to ``message`` must carry (kept in its metadata)."""
    token = message.metadata.get(TOKEN_KEY)
    return token if isinstance(token, str) and token else None


def describe_payload(data: Any) -> str:
    """A log-safe summary of a rejected body: its shape, never its values."""
    if isinstance(data, dict):
        return "object with keys " + ", ".join(sorted(str(k) for k in data)[:10])
    return type(data).__name__
