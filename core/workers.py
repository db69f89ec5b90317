"""``eneca-bot serve --workers N``: N gateway processes on one port, for every core.

The supervisor starts N ``eneca-bot serve`` children with ``SO_REUSEPORT`` (the kernel
spreads connections over them), forwards SIGTERM/SIGINT to them and waits, and starts a
child again when it dies on its own. Each child is a full node of the cluster: lanes,
the inbox/outbox and idempotency live in the shared database, so this needs a plugin whose
state is shared across processes (``postgres``); with the embedded SQLite default it is
refused with one line.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

#: Plugins whose store, durable backend and lanes are shared by several processes.
SHARED_STATE_PLUGINS = ("postgres",)
#: A child that dies is started again after this long (never in a tight loop).
RESTART_DELAY_S = 1.0


def refusal(workers: int, plugins: Sequence[str]) -> str | None:
    """Why ``--workers`` cannot run with ``plugins`` (``None``: it can)."""
    if workers <= 1 or any(name in plugins for name in SHARED_STATE_PLUGINS):
        return None
    return (
        f"--workers {workers} needs state shared by every process: enable the postgres "
        "plugin in place of memory_sqlite (PLUGINS=http_api,talkme,postgres,agent_openai "
        "and POSTGRES_DSN); embedded SQLite keeps lanes and the inbox in one process"
    )


def supervise(workers: int, child_argv: Sequence[str]) -> int:
    """Run ``workers`` children of ``child_argv`` until told to stop; their worst exit
    code (0 when all stopped cleanly)."""
    stopping = False
    children: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(slot: int) -> None:
        children[slot] = subprocess.Popen([*child_argv, "--reuse-port"])

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in range(workers):
            spawn(slot)
        worst = 0
        while children:
            time.sleep(0.2)
            for slot, child in list(children.items()):
                code = child.poll()
                if code is None:
                    continue
                if stopping:
                    worst = max(worst, abs(code))
                    del children[slot]
                    continue
                print(
                    f"eneca-bot: worker {child.pid} exited with {code}; starting another",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(RESTART_DELAY_S)
                if not stopping:
                    spawn(slot)
        return worst
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def child_command(argv: Sequence[str]) -> list[str]:
    """This command line without ``--workers`` (the children are single processes)."""
    result: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        result.append(arg)
    return [sys.executable, "-m", "core.cli", *result]
