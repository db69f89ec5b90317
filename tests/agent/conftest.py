"""Fixtures for the agent_openai tests: the fake OpenAI server, documents, an app factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.openai_server import FakeOpenAI, fake_openai  # noqa: F401
from tests.support.shop import DOCUMENTS, SYSTEM

ENV_NAMES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "OPENAI_TEMPERATURE",
    "OPENAI_TIMEOUT_S",
    "OPENAI_MAX_RETRIES",
    "OPENAI_MAX_TOKENS",
    "SYSTEM_PROMPT",
    "SYSTEM_PROMPT_FILE",
    "KNOWLEDGE_DIR",
    "KNOWLEDGE_MODE",
    "AGENT_MAX_TOOL_ROUNDS",
    "AGENT_FALLBACK_TEXT",
    "AGENT_FALLBACK_TEXT_RU",
    "AGENT_FALLBACK_TEXT_EN",
    "KNOWLEDGE_NOT_FOUND_TEXT_RU",
    "KNOWLEDGE_NOT_FOUND_TEXT_EN",
    "AGENT_HANDOVER_HINT_RU",
    "AGENT_HANDOVER_HINT_EN",
    "AGENT_HANDOVER_TOOLS",
    "KNOWLEDGE_SEARCH",
    "KNOWLEDGE_MIN_SCORE",
    "KNOWLEDGE_MIN_SIMILARITY",
    "EMBEDDINGS_MODEL",
    "AGENT_HISTORY_TURNS",
    "DATA_DIR",
    "PLUGINS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings have no env prefix: keep the runner's own OPENAI_* out of the tests."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    folder.mkdir()
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def agent_app(eneca_app, fake_openai: FakeOpenAI, docs: Path):  # noqa: F811
    """``client = await agent_app(**agent_openai_settings)`` against the fake server."""

    async def make(**settings):
        values = {
            "openai_api_key": "sk-test-secret-key",
            "openai_base_url": fake_openai.base_url,
            "openai_model": "fake-model",
            "openai_max_retries": 0,
            "openai_timeout_s": 5,
            "system_prompt": SYSTEM,
            "knowledge_dir": str(docs),
        }
        values.update(settings)
        values = {k: v for k, v in values.items() if v is not None}
        return await eneca_app(plugins=["agent_openai"], settings={"agent_openai": values})

    return make
