"""``POST /admin/knowledge/reindex``: reindex the knowledge base of a running gateway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from loguru import logger
from pydantic import BaseModel

from core import ApiError, ErrorResponse, Gateway, endpoint, json_response, require_api_key
from plugins.agent_openai.kb.errors import UnsafeReindex

if TYPE_CHECKING:  # the index (numpy, morphology) loads only when the base is on
    from plugins.agent_openai.knowledge import KnowledgeIndex

IndexGetter = Callable[[], "KnowledgeIndex | None"]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_BOOLEAN = {"type": "boolean"}


class ReindexReport(BaseModel):
    added: int
    updated: int
    removed: int
    unchanged: int
    skipped: int
    embedded: int
    documents: int
    passages: int
    seconds: float


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, "invalid_query", f"{name} must be true or false")


def knowledge_routes(gateway: Gateway, index: IndexGetter) -> list[web.RouteDef]:
    """The admin route, bound to the plugin's current index."""

    @endpoint(
        "Reindex the knowledge base now: new, changed and deleted documents (admin)",
        responses={200: ReindexReport, 409: ErrorResponse, 503: ErrorResponse},
        auth="admin",
        tags=("knowledge",),
        query={
            "full": ("re-read every document, not only changed ones", _BOOLEAN),
            "allow_empty": ("empty the index if the folder has no documents", _BOOLEAN),
        },
        description=(
            "Runs while the gateway keeps answering: searches read the previous index until "
            "the new one is ready. 409 knowledge_dir_unsafe when KNOWLEDGE_DIR is missing, or "
            "empty while the index is not (nothing is changed; pass allow_empty=true to "
            "empty it). 503 knowledge_disabled with KNOWLEDGE_MODE=off."
        ),
    )
    async def reindex(request: web.Request) -> web.Response:
        require_api_key(request, gateway.settings, admin=True)
        full, allow_empty = _flag(request, "full"), _flag(request, "allow_empty")
        current = index()
        if current is None or not current.is_open:
            raise ApiError(503, "knowledge_disabled", "the knowledge base is off")
        try:
            report = await current.sync(full=full, allow_empty=allow_empty)
        except UnsafeReindex as exc:
            logger.error("knowledge reindex refused: {}", exc)
            raise ApiError(409, "knowledge_dir_unsafe", str(exc)) from None
        documents, passages = await current.counts()
        body = ReindexReport(
            added=report.added,
            updated=report.updated,
            removed=report.removed,
            unchanged=report.unchanged,
            skipped=report.skipped,
            embedded=report.embedded,
            documents=documents,
            passages=passages,
            seconds=round(report.seconds, 3),
        )
        return json_response(body.model_dump())

    handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = reindex
    return [web.post("/admin/knowledge/reindex", handler)]
