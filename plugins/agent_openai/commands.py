"""``eneca-bot kb reindex``, ``kb search "query"`` and ``kb eval FILE.jsonl``.

CLI commands get a loaded gateway that has not started, so they open and close the
knowledge index themselves.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core import Gateway
from plugins.agent_openai.evaluation import EvalFileError, evaluate, format_report, load_questions
from plugins.agent_openai.kb.errors import UnsafeReindex

if TYPE_CHECKING:  # the index (numpy, morphology) loads only when the base is on
    from plugins.agent_openai.knowledge import KnowledgeIndex

IndexOpener = Callable[[Gateway], Awaitable["KnowledgeIndex"]]
IndexCloser = Callable[[], Awaitable[None]]


async def _sync_or_warn(index: KnowledgeIndex) -> None:
    """Index changed files first (cheap); a missing folder leaves the index as it is."""
    try:
        await index.sync()
    except UnsafeReindex as exc:
        print(f"warning: {exc}", file=sys.stderr)


def add_commands(
    subparsers: argparse._SubParsersAction, open_index: IndexOpener, close_index: IndexCloser
) -> None:
    """Register ``kb`` with its ``reindex`` and ``search`` sub-commands."""
    kb = subparsers.add_parser("kb", help="knowledge base: reindex documents or search them")
    actions = kb.add_subparsers(dest="kb_command", metavar="ACTION", required=True)

    reindex = actions.add_parser("reindex", help="index new and changed documents")
    reindex.add_argument("--full", action="store_true", help="re-read every document")
    reindex.add_argument(
        "--allow-empty",
        action="store_true",
        help="empty the index when the folder is missing or has no documents",
    )

    async def run_reindex(args: argparse.Namespace, gateway: Gateway) -> int:
        index = await open_index(gateway)
        try:
            report = await index.sync(full=args.full, allow_empty=args.allow_empty)
            documents, chunks = await index.counts()
        except UnsafeReindex as exc:
            print(f"eneca-bot: error: {exc}", file=sys.stderr)
            return 1
        finally:
            await close_index()
        skipped = f", {report.skipped} unreadable (skipped)" if report.skipped else ""
        embedded = f", {report.embedded} passages embedded" if report.embedded else ""
        print(
            f"{report.added} added, {report.updated} updated, {report.removed} removed, "
            f"{report.unchanged} unchanged{skipped}{embedded}; {documents} documents, "
            f"{chunks} passages in {index.db_path} (from {index.folder})"
        )
        return 0

    reindex.set_defaults(func=run_reindex)

    search = actions.add_parser("search", help="show the passages matching a query")
    search.add_argument("query", help="what to look for")
    search.add_argument("-n", "--limit", type=int, default=5, help="how many passages (5)")

    async def run_search(args: argparse.Namespace, gateway: Gateway) -> int:
        index = await open_index(gateway)
        try:
            await _sync_or_warn(index)
            passages = await gateway.knowledge_search(args.query, max(1, args.limit))
        finally:
            await close_index()
        if not passages:
            print("no matching passages")
            return 1
        for number, passage in enumerate(passages, 1):
            print(f"[{number}] {passage.citation}  ({passage.source}, score {passage.score:.2f})")
            print(passage.text)
            print()
        return 0

    search.set_defaults(func=run_search)

    evaluate_cmd = actions.add_parser(
        "eval", help="measure the search on labelled questions (hit@1, hit@4, MRR, false answers)"
    )
    evaluate_cmd.add_argument("file", type=Path, help="JSON lines: question, document, section")
    evaluate_cmd.add_argument(
        "-v",
        "--verbose",
        "--misses",
        dest="verbose",
        action="store_true",
        help="list the questions answered wrongly (expected and first passage)",
    )

    async def run_eval(args: argparse.Namespace, gateway: Gateway) -> int:
        try:
            questions = load_questions(args.file)
        except EvalFileError as exc:
            print(f"eneca-bot: error: {exc}", file=sys.stderr)
            return 2
        index = await open_index(gateway)
        try:
            await _sync_or_warn(index)
            result = await evaluate(questions, gateway.knowledge_search)
        finally:
            await close_index()
        print(format_report(result))
        if args.verbose:
            for miss in result.misses:
                print(f"  miss: {miss}")
        return 0

    evaluate_cmd.set_defaults(func=run_eval)
