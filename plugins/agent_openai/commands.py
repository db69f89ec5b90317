"""``eneca-bot kb reindex`` and ``eneca-bot kb search "query"``.

CLI commands get a loaded gateway that has not started, so they open and close the
knowledge index themselves.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from core import Gateway
from plugins.agent_openai.knowledge import KnowledgeIndex

IndexOpener = Callable[[Gateway], Awaitable[KnowledgeIndex]]
IndexCloser = Callable[[], Awaitable[None]]


def add_commands(
    subparsers: argparse._SubParsersAction, open_index: IndexOpener, close_index: IndexCloser
) -> None:
    """Register ``kb`` with its ``reindex`` and ``search`` sub-commands."""
    kb = subparsers.add_parser("kb", help="knowledge base: reindex documents or search them")
    actions = kb.add_subparsers(dest="kb_command", metavar="ACTION", required=True)

    reindex = actions.add_parser("reindex", help="index new and changed documents")
    reindex.add_argument("--full", action="store_true", help="re-read every document")

    async def run_reindex(args: argparse.Namespace, gateway: Gateway) -> int:
        index = await open_index(gateway)
        try:
            report = await index.sync(full=args.full)
            documents, chunks = await index.counts()
        finally:
            await close_index()
        print(
            f"{report.added} added, {report.updated} updated, {report.removed} removed, "
            f"{report.unchanged} unchanged; {documents} documents, {chunks} passages "
            f"in {index.db_path} (from {index.folder})"
        )
        return 0

    reindex.set_defaults(func=run_reindex)

    search = actions.add_parser("search", help="show the passages matching a query")
    search.add_argument("query", help="what to look for")
    search.add_argument("-n", "--limit", type=int, default=5, help="how many passages (5)")

    async def run_search(args: argparse.Namespace, gateway: Gateway) -> int:
        index = await open_index(gateway)
        try:
            await index.sync()  # cheap: only changed files are read
            passages = await gateway.knowledge_search(args.query, max(1, args.limit))
        finally:
            await close_index()
        if not passages:
            print("no matching passages")
            return 1
        for number, passage in enumerate(passages, 1):
            heading = passage.title or passage.source
            print(f"[{number}] {heading}  ({passage.source}, score {passage.score:.2f})")
            print(passage.text)
            print()
        return 0

    search.set_defaults(func=run_search)
