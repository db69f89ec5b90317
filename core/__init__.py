"""eneca-bot's core. Plugins import what they need from here, and only from here::

    from core import hookimpl, Gateway, Message, Reply

The names are loaded on first use (PEP 562), so ``import core`` stays cheap (the pytest
plugin imports it in every test run) and the rooms underneath can change without
breaking a plugin. The rooms: ``core.contract`` (values and interfaces), ``core.engine``
(bus, pipeline), ``core.durable`` (inbox/outbox), ``core.web`` (aiohttp), ``core.config``;
see docs/architecture.md.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = metadata.version("eneca-bot")
except metadata.PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # the hook marker and the façade
    "hookimpl": "core.plugins",
    "Gateway": "core.gateway",
    "ReplyHandle": "core.engine.bus",
    "MessageBus": "core.engine.bus",
    "InProcessBus": "core.engine.bus",
    "InProcessRateLimits": "core.engine.ratelimit",
    # values and interfaces (the contract room)
    "Message": "core.contract.events",
    "Reply": "core.contract.events",
    "ReplyError": "core.contract.events",
    "Chunk": "core.contract.events",
    "SessionCleared": "core.contract.events",
    "MERGED_IDS": "core.contract.events",
    "Agent": "core.contract.agent",
    "AgentRequest": "core.contract.agent",
    "ChunkSink": "core.contract.agent",
    "Tool": "core.contract.agent",
    "ToolResult": "core.contract.agent",
    "ConversationStore": "core.contract.store",
    "AppendsWithHistory": "core.contract.store",
    "OwnsConversations": "core.contract.store",
    "ConversationInfo": "core.contract.store",
    "Role": "core.contract.store",
    "Turn": "core.contract.store",
    "DeliveryResult": "core.contract.delivery",
    "DeliveryProgress": "core.contract.delivery",
    "Check": "core.contract.health",
    "Passage": "core.contract.knowledge",
    "EnecaError": "core.contract.errors",
    "ConfigError": "core.contract.errors",
    "PluginError": "core.contract.errors",
    "BusFullError": "core.contract.errors",
    "BusClosedError": "core.contract.errors",
    "StorageUnavailable": "core.contract.errors",
    "RateLimited": "core.contract.errors",
    "RateLimitBackend": "core.contract.ratelimit",
    "WindowCount": "core.contract.ratelimit",
    # settings
    "PluginSettings": "core.config.settings",
    "CoreSettings": "core.config.settings",
    "CommaList": "core.config.settings",
    "split_commas": "core.config.settings",
    # helpers for channels (the web room)
    "ApiError": "core.web.errors",
    "api_error": "core.web.errors",
    "REQUEST_ID": "core.web.http",
    "bind_conversation": "core.web.http",
    "describe_errors": "core.web.http",
    "error_response": "core.web.http",
    "json_response": "core.web.http",
    "read_json": "core.web.http",
    "read_model": "core.web.http",
    "validate": "core.web.http",
    "presented_key": "core.web.auth",
    "Caller": "core.web.keys",
    "KeyKind": "core.web.keys",
    "Visitor": "core.web.visitors",
    "VISITOR_HEADER": "core.web.access",
    "Ownership": "core.web.owners",
    "require_api_key": "core.web.auth",
    "client_ip": "core.web.client",
    "public_prefix": "core.web.public_path",
    "endpoint": "core.web.openapi",
    "ErrorDetail": "core.web.openapi",
    "ErrorResponse": "core.web.openapi",
    "NOT_BLANK": "core.web.openapi",
    # helpers for storage plugins and stats
    "GroupCommit": "core.durable.group_commit",
    "percentile": "core.durable.stats",
    # for a durable backend of another storage (the postgres plugin's)
    "PendingDelivery": "core.durable.sqlite",
    "message_fields": "core.durable.codec",
    "message_from_json": "core.durable.codec",
    "reply_fields": "core.durable.codec",
    "reply_from_json": "core.durable.codec",
    "dumps": "core.jsonenc",
}

__all__ = [
    "MERGED_IDS",
    "NOT_BLANK",
    "REQUEST_ID",
    "VISITOR_HEADER",
    "Agent",
    "AgentRequest",
    "ApiError",
    "AppendsWithHistory",
    "BusClosedError",
    "BusFullError",
    "Caller",
    "Check",
    "Chunk",
    "ChunkSink",
    "CommaList",
    "ConfigError",
    "ConversationInfo",
    "ConversationStore",
    "CoreSettings",
    "DeliveryProgress",
    "DeliveryResult",
    "EnecaError",
    "ErrorDetail",
    "ErrorResponse",
    "Gateway",
    "GroupCommit",
    "InProcessBus",
    "InProcessRateLimits",
    "KeyKind",
    "Message",
    "MessageBus",
    "Ownership",
    "OwnsConversations",
    "Passage",
    "PendingDelivery",
    "PluginError",
    "PluginSettings",
    "RateLimitBackend",
    "RateLimited",
    "Reply",
    "ReplyError",
    "ReplyHandle",
    "Role",
    "SessionCleared",
    "StorageUnavailable",
    "Tool",
    "ToolResult",
    "Turn",
    "Visitor",
    "WindowCount",
    "__version__",
    "api_error",
    "bind_conversation",
    "client_ip",
    "describe_errors",
    "dumps",
    "endpoint",
    "error_response",
    "hookimpl",
    "json_response",
    "message_fields",
    "message_from_json",
    "percentile",
    "presented_key",
    "public_prefix",
    "read_json",
    "read_model",
    "reply_fields",
    "reply_from_json",
    "require_api_key",
    "split_commas",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and editors; nothing is imported at run time
    from core.config.settings import CommaList, CoreSettings, PluginSettings, split_commas
    from core.contract.agent import Agent, AgentRequest, ChunkSink, Tool, ToolResult
    from core.contract.delivery import DeliveryProgress, DeliveryResult
    from core.contract.errors import (
        BusClosedError,
        BusFullError,
        ConfigError,
        EnecaError,
        PluginError,
        RateLimited,
        StorageUnavailable,
    )
    from core.contract.events import (
        MERGED_IDS,
        Chunk,
        Message,
        Reply,
        ReplyError,
        SessionCleared,
    )
    from core.contract.health import Check
    from core.contract.knowledge import Passage
    from core.contract.ratelimit import RateLimitBackend, WindowCount
    from core.contract.store import (
        AppendsWithHistory,
        ConversationInfo,
        ConversationStore,
        OwnsConversations,
        Role,
        Turn,
    )
    from core.durable.codec import (
        message_fields,
        message_from_json,
        reply_fields,
        reply_from_json,
    )
    from core.durable.group_commit import GroupCommit
    from core.durable.sqlite import PendingDelivery
    from core.durable.stats import percentile
    from core.engine.bus import InProcessBus, MessageBus, ReplyHandle
    from core.engine.ratelimit import InProcessRateLimits
    from core.gateway import Gateway
    from core.jsonenc import dumps
    from core.plugins import hookimpl
    from core.web.access import VISITOR_HEADER
    from core.web.auth import presented_key, require_api_key
    from core.web.client import client_ip
    from core.web.errors import ApiError, api_error
    from core.web.http import (
        REQUEST_ID,
        bind_conversation,
        describe_errors,
        error_response,
        json_response,
        read_json,
        read_model,
        validate,
    )
    from core.web.keys import Caller, KeyKind
    from core.web.openapi import NOT_BLANK, ErrorDetail, ErrorResponse, endpoint
    from core.web.owners import Ownership
    from core.web.public_path import public_prefix
    from core.web.visitors import Visitor
