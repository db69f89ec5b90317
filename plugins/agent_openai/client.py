"""The one ``openai.AsyncOpenAI`` client of the app, built from the settings."""

from __future__ import annotations

import openai

from plugins.agent_openai.settings import OpenAIAgentSettings

#: OpenAI-compatible local servers need no key, but the client insists on one.
PLACEHOLDER_KEY = "not-needed"


def build_client(settings: OpenAIAgentSettings) -> openai.AsyncOpenAI:
    """A client for OpenAI or the compatible server at ``OPENAI_BASE_URL``."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    return openai.AsyncOpenAI(
        api_key=key or PLACEHOLDER_KEY,
        base_url=settings.openai_base_url or None,
        timeout=settings.openai_timeout_s,
        max_retries=settings.openai_max_retries,
    )
