"""``eneca-bot db backup PATH``: a consistent copy of the gateway's SQLite files, online.

Copying ``data/`` while the server runs is not safe: a database and its ``-wal`` file are
copied at different moments, and the copy may be torn. SQLite's online backup API
(``sqlite3.Connection.backup``) copies every page of a database inside one read
transaction, so the copy is the database as it was at one instant, while the server goes
on writing (WAL readers do not block writers). Each copy is checked (``PRAGMA
quick_check``) and moved into place only once complete.

The files: the inbox/outbox (``DATA_DIR/gateway.db``) and each enabled plugin's
``database_files`` (the conversation memory's ``checkpoints.db``...). Restoring is putting
the copies back into ``DATA_DIR`` (or pointing ``DATA_DIR`` at the backup folder) with the
server stopped. The knowledge index is not copied: it is rebuilt from ``KNOWLEDGE_DIR``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from core.contract.errors import EnecaError
from core.plugins import call_each_sync

#: How long a copy waits for a lock a writer holds (a checkpoint...), in seconds.
BUSY_TIMEOUT_S = 30.0


def add_parser(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="the gateway's SQLite files: online backup")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    backup = actions.add_parser(
        "backup",
        help="copy every SQLite file of the gateway into PATH; safe while it runs",
    )
    backup.add_argument("path", help="folder to write the copies into (created if missing)")


def database_files(config: Any) -> list[Path]:
    """The gateway's own inbox/outbox, then each enabled plugin's files, without repeats."""
    from core.web.app import create_app
    from core.web.http import GATEWAY

    gateway = create_app(config)[GATEWAY]
    files = [gateway._durable.path]
    for _, paths in call_each_sync(config.pm, "database_files", gateway=gateway):
        files += [Path(path) for path in paths or ()]
    unique: list[Path] = []
    for path in (path.absolute() for path in files):
        if path not in unique:
            unique.append(path)
    return unique


def backup_file(source: Path, target: Path) -> int:
    """Copy the database ``source`` to ``target`` (a new file); returns its size in bytes."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    # Not ``mode=ro``: a WAL database needs its -shm file, which a read-only connection
    # cannot create when the server is stopped. Nothing is written to the source.
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one instant
            verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise EnecaError(f"the copy of {source} failed its check: {verdict}")
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
    finally:
        src.close()
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)
    return target.stat().st_size


def run(args: argparse.Namespace, config: Any) -> int:
    target = Path(args.path).expanduser().absolute()
    sources = database_files(config)
    clashes = [source.name for source in sources if (target / source.name).exists()]
    if clashes:
        raise EnecaError(f"{target} already holds {', '.join(clashes)}: choose a new folder")
    names = [source.name for source in sources]
    if len(set(names)) != len(names):
        raise EnecaError(f"two databases share a file name ({', '.join(names)})")
    target.mkdir(parents=True, exist_ok=True)
    copied = 0
    for source in sources:
        if not source.is_file():
            print(f"skipped {source}: no such file (not created yet)")
            continue
        started = time.perf_counter()
        try:
            size = backup_file(source, target / source.name)
        except sqlite3.Error as exc:
            raise EnecaError(f"cannot back up {source}: {exc}") from None
        took = (time.perf_counter() - started) * 1000
        print(f"{source} -> {target / source.name} ({size} bytes, {took:.0f} ms)")
        copied += 1
    print(f"backup done: {copied} file(s) in {target}")
    return 0 if copied else 1
