"""core.web.errors is the one map from domain errors to HTTP, and every channel answers
through it: the same status, code and Retry-After from http_api and from TalkMe."""

import asyncio

import pytest

from core.contract.errors import (
    BusClosedError,
    BusFullError,
    ConfigError,
    RateLimited,
    StorageUnavailable,
)
from core.testing import ScriptedAgent
from core.web.errors import ApiError, api_error
from tests.support.talkme_helpers import webhook_body


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (BusFullError("full"), 503, "busy", "1"),
        (BusClosedError("closing"), 503, "shutting_down", "5"),
        (StorageUnavailable("keep the message"), 503, "storage_unavailable", "5"),
        (RateLimited("requests", 60, 7), 429, "rate_limited", "7"),
    ],
)
def test_each_domain_error_has_one_status_code_and_retry_after(error, status, code, retry_after):
    mapped = api_error(error)
    assert mapped is not None
    assert (mapped.status, mapped.code, mapped.headers["Retry-After"]) == (
        status,
        code,
        retry_after,
    )
    assert not isinstance(error, ApiError)  # the domain never speaks HTTP


def test_an_api_error_is_itself_and_other_errors_are_not_mapped():
    error = ApiError(418, "teapot", "short and stout")
    assert api_error(error) is error
    assert api_error(ConfigError("bad")) is None
    assert api_error(ValueError("bug")) is None


async def test_a_full_bus_is_the_same_503_on_every_channel(eneca_app):
    settings = {"bus_max_in_flight": 1, "bus_full_policy": "reject", "shutdown_grace_s": 0.2}
    client = await eneca_app(
        ["http_api", "talkme"],
        agent=ScriptedAgent(delay=1.0),
        settings={"core": settings, "talkme": {"api_url": "http://127.0.0.1:9"}},  # not called
    )
    first = asyncio.create_task(client.post("/api/chat", json={"message": "slow"}))
    await asyncio.sleep(0.2)  # the only slot is taken
    chat = await client.post("/api/chat", json={"message": "another"})
    hook = await client.post("/webhook/talkme", json=webhook_body("hi", client_id="v2"))
    answers = []
    for response in (chat, hook):
        body = await response.json()
        answers.append((response.status, body["error"]["code"], response.headers["Retry-After"]))
    assert answers == [(503, "busy", "1"), (503, "busy", "1")]
    assert (await first).status == 200
