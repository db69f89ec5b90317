"""What is sent to the model: the system prompt, then the recent conversation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from core import Message, Turn
from plugins.agent_openai.settings import OpenAIAgentSettings

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful customer-support assistant. Answer briefly, in the customer's "
    "language. Use the search_knowledge_base tool for questions about the company's "
    "policies and never invent facts. When you answer from the knowledge base, name the "
    "document you took the answer from."
)
_ROLES = frozenset({"user", "assistant", "system"})


def load_system_prompt(settings: OpenAIAgentSettings) -> str:
    """``SYSTEM_PROMPT``, else the file ``SYSTEM_PROMPT_FILE``, else a built-in default."""
    if settings.system_prompt and settings.system_prompt.strip():
        return settings.system_prompt.strip()
    path = Path(settings.system_prompt_file)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        logger.info("no system prompt file at {}: using the built-in prompt", path)
        return DEFAULT_SYSTEM_PROMPT
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("cannot read the system prompt file {}: {}", path, exc)
        return DEFAULT_SYSTEM_PROMPT
    return text or DEFAULT_SYSTEM_PROMPT


def with_context(system_prompt: str, context: str | None) -> str:
    """The system prompt with knowledge-base passages appended (``KNOWLEDGE_MODE=context``)."""
    if not context:
        return system_prompt
    return (
        f"{system_prompt}\n\n"
        "Passages from the knowledge base that may answer the customer's message "
        f"(answer from them when they are relevant):\n\n{context}"
    )


def chat_messages(
    system_prompt: str, history: Sequence[Turn], message: Message, max_turns: int
) -> list[dict[str, Any]]:
    """System prompt, then the last ``max_turns`` turns (the new message is the last one;
    added here only when the store did not include it)."""
    turns = list(history)[-max_turns:]
    if not turns or turns[-1].role != "user" or turns[-1].text != message.text:
        turns = (
            [*turns[-(max_turns - 1) :], Turn("user", message.text)]
            if max_turns > 1
            else [Turn("user", message.text)]
        )
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn in turns:
        if turn.role in _ROLES and turn.text:
            messages.append({"role": turn.role, "content": turn.text})
    return messages
