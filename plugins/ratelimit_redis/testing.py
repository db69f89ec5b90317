"""pytest fixtures for code that runs on the ratelimit_redis plugin (loaded as a pytest
plugin).

``redis_url`` is ``ENECA_TEST_REDIS_URL`` (default the local test server). When the server
cannot be reached the test is skipped with one line, except with ``CI=true``, where it
fails: a green CI run always means these tests ran. ``redis_prefix`` is a key prefix of
its own per test; every key under it is deleted at the end (nothing else is touched).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from core.testing import service_missing

DEFAULT_TEST_URL = "redis://127.0.0.1:6379/0"

_reachable: dict[str, str | None] = {}


def test_url() -> str:
    return os.environ.get("ENECA_TEST_REDIS_URL", DEFAULT_TEST_URL)


test_url.__test__ = False  # type: ignore[attr-defined]  # not a test, whatever its name


def _unreachable(url: str) -> str | None:
    """Why ``url`` cannot be used (``None``: it can); asked once per run."""
    if url not in _reachable:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3) as client:
                client.ping()
            _reachable[url] = None
        except redis.RedisError as exc:
            _reachable[url] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return _reachable[url]


def require_redis() -> str:
    """The test URL, or skip (fail under CI=true) when its server is not reachable."""
    url = test_url()
    why = _unreachable(url)
    if why is not None:
        service_missing(f"Redis not reachable at ENECA_TEST_REDIS_URL ({why})")
    return url


def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key under ``prefix``; how many there were."""
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix for this test; its keys are deleted after."""
    prefix = f"eneca_test:{uuid.uuid4().hex[:16]}:"
    try:
        yield prefix
    finally:
        delete_prefix(redis_url, prefix)
