"""agent_openai: the default agent, an OpenAI-compatible model grounded in a knowledge base.

Hooks: ``settings_model``, ``lifespan`` (one ``AsyncOpenAI`` client for the app's lifetime,
built on the first model request, and the knowledge index), ``agent`` and
``knowledge_search`` (both ``trylast`` so another plugin can replace them),
``register_commands`` (``eneca-bot kb ...``), ``register_routes`` (the admin reindex),
``config_problems`` (a missing knowledge folder fails ``check``) and ``health_check``. With no
``OPENAI_API_KEY`` and no ``OPENAI_BASE_URL`` it answers from the knowledge base alone.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from loguru import logger

from core import Agent, Check, Gateway, Passage, hookimpl
from plugins.agent_openai.agent import OpenAIAgent
from plugins.agent_openai.commands import add_commands
from plugins.agent_openai.kb.errors import UnsafeReindex
from plugins.agent_openai.model import OpenAIModel
from plugins.agent_openai.prompt import load_system_prompt
from plugins.agent_openai.routes import knowledge_routes
from plugins.agent_openai.settings import OpenAIAgentSettings

if TYPE_CHECKING:  # the knowledge base (numpy, morphology) loads only when it is on
    from plugins.agent_openai.knowledge import KnowledgeIndex

__all__ = ["OpenAIAgent", "OpenAIAgentPlugin", "OpenAIAgentSettings"]

INDEX_FILE = "knowledge.db"


class OpenAIAgentPlugin:
    """The plugin object; one per gateway, state on the instance."""

    def __init__(self) -> None:
        self.index: KnowledgeIndex | None = None
        self.model: OpenAIModel | None = None
        self._agent: OpenAIAgent | None = None

    # -- set-up ---------------------------------------------------------------------------

    @hookimpl
    def settings_model(self) -> type[OpenAIAgentSettings]:
        return OpenAIAgentSettings

    async def _open_index(self, gateway: Gateway) -> KnowledgeIndex:
        from plugins.agent_openai.kb.setup import embedder_for
        from plugins.agent_openai.knowledge import KnowledgeIndex, SearchSettings

        settings = gateway.settings_for(OpenAIAgentSettings)
        index = KnowledgeIndex(
            Path(gateway.settings.data_dir) / INDEX_FILE,
            settings.knowledge_dir,
            search=SearchSettings(
                settings.knowledge_search,
                settings.knowledge_min_score,
                settings.knowledge_min_similarity,
            ),
            embedder=embedder_for(settings),
        )
        await index.open()
        self.index = index
        return index

    async def _close_index(self) -> None:
        if self.index is not None:
            await self.index.close()
            self.index = None

    @hookimpl
    async def lifespan(self, gateway: Gateway) -> AsyncIterator[None]:
        settings = gateway.settings_for(OpenAIAgentSettings)
        if settings.knowledge_mode != "off":
            index = await self._open_index(gateway)
            try:
                await index.sync()
            except UnsafeReindex as exc:  # a mistyped KNOWLEDGE_DIR must not empty the index
                logger.error("knowledge: {}", exc)
            except Exception as exc:  # a bad document must not stop the gateway
                logger.opt(exception=exc).error("knowledge indexing failed: {}", exc)
        if settings.llm_configured:
            if settings.openai_api_key is not None:
                gateway.mask_secrets(settings.openai_api_key.get_secret_value())
            self.model = OpenAIModel(settings)
            logger.info("agent: model {} at {}", settings.openai_model, self.model.base_url)
        else:
            logger.warning(
                "no OPENAI_API_KEY or OPENAI_BASE_URL: answering from the knowledge base only"
            )

        async def search(query: str, limit: int) -> Sequence[Passage]:
            return await gateway.knowledge_search(query, limit)

        self._agent = OpenAIAgent(settings, self.model, search, load_system_prompt(settings))
        try:
            yield
        finally:
            self._agent = None
            if self.model is not None:
                await self.model.close()
                self.model = None
            await self._close_index()

    @hookimpl
    def register_commands(self, subparsers: argparse._SubParsersAction) -> None:
        add_commands(subparsers, self._open_index, self._close_index)

    @hookimpl
    def register_routes(self, gateway: Gateway) -> list[web.RouteDef]:
        return knowledge_routes(gateway, lambda: self.index)

    @hookimpl
    def config_problems(self, gateway: Gateway) -> list[str]:
        settings = gateway.settings_for(OpenAIAgentSettings)
        if settings.knowledge_mode == "off":
            return []
        from plugins.agent_openai.kb.setup import knowledge_problems

        return knowledge_problems(settings, Path(gateway.settings.data_dir) / INDEX_FILE)

    # -- providers ------------------------------------------------------------------------

    @hookimpl(trylast=True)
    def agent(self) -> Agent | None:
        return self._agent

    @hookimpl(trylast=True)
    async def knowledge_search(self, query: str, limit: int) -> Sequence[Passage] | None:
        if self.index is None:
            return None
        return await self.index.search(query, limit)

    @hookimpl
    async def health_check(self) -> Check:
        detail: dict[str, object] = dict(self._agent.status()) if self._agent else {}
        if self.index is not None:
            documents, chunks = await self.index.counts()
            detail.update(knowledge_documents=documents, knowledge_chunks=chunks)
            detail.update(self.index.status())
        else:
            detail.update(knowledge_documents=0, knowledge_chunks=0)
        degraded = self._agent is not None and self._agent.degraded
        detail["state"] = "degraded" if degraded else "ok"
        return Check("agent_openai", not degraded, detail)
