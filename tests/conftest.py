"""Shared fixtures: the plugin kit (``eneca_app``, ``ScriptedAgent``...) is the same one
third-party plugin authors use."""

import faulthandler
import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from loguru import logger

# plugins.postgres.testing, plugins.ratelimit_redis.testing: a per-test PostgreSQL schema and
# Redis key prefix (skip without a server, fail without one under CI=true).
# tests.support.fixtures: the fake model and fake TalkMe API that serve-process tests use.
pytest_plugins = [
    "core.testing",
    "plugins.postgres.testing",
    "plugins.ratelimit_redis.testing",
    "tests.support.fixtures",
]

#: How long the finished session waits for leftover non-daemon threads before it exits.
THREAD_GRACE_S = 10.0


@pytest.fixture(autouse=True)
def _loguru_restored() -> Iterator[None]:
    """Loguru back on the process's stderr after each test. A test that configures logging
    in-process (``cli.main``, ``setup_logging``) points it at that test's captured stderr,
    which pytest closes afterwards: every later log line failed with 'I/O operation on a
    closed file' and buried the output of the test that really failed."""
    yield
    logger.remove()
    logger.add(sys.__stderr__)


def pytest_unconfigure(config: pytest.Config) -> None:
    """A test killed by its timeout leaves what it opened behind; an aiosqlite
    connection's worker thread is not a daemon, so the interpreter waited for it for
    ever after the summary (a CI run hung for 80 minutes on one timed-out test). Name the
    leftover threads and exit with the session's status instead."""
    deadline = time.monotonic() + THREAD_GRACE_S
    while leftovers := [
        t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
    ]:
        if time.monotonic() > deadline:
            names = ", ".join(thread.name for thread in leftovers)
            sys.__stderr__.write(f"\nconftest: threads left running after the tests: {names}\n")
            faulthandler.dump_traceback(sys.__stderr__)
            sys.__stderr__.flush()
            sys.stdout.flush()
            os._exit(int(getattr(config, "_eneca_exit_status", 1)))
        time.sleep(0.1)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._eneca_exit_status = exitstatus  # type: ignore[attr-defined]
