"""``eneca-bot chat``, the smoke client, as a user runs it: a subprocess against a real
``eneca-bot serve`` (and through nginx), the REPL through its stdin."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.openai_server import FakeOpenAI, FakeResponse
from tests.support.serve_process import ADMIN_KEY, free_port

SCRIPT = Path(sys.executable).with_name("eneca-bot")


@dataclass
class Run:
    code: int
    out: str
    err: str


def client_env(url: str, key: str | None = ADMIN_KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["ENECA_URL"] = url
    if key is not None:
        env["ENECA_API_KEY"] = key
    return env


async def spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(SCRIPT), "chat", *args, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def chat(*args: str, env: dict[str, str], stdin: str = "") -> Run:
    process = await spawn(*args, env=env)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def one_error_line(run: Run) -> str:
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("eneca-bot chat: error: "), lines[0]
    return lines[0]


async def history(url: str, thread: str) -> list[tuple[str, str]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{url}/api/threads/{thread}/messages", headers={"X-API-Key": ADMIN_KEY}
        ) as response:
            return [(m["role"], m["content"]) for m in (await response.json())["messages"]]


async def test_one_message_streamed_or_not_continues_the_given_thread(gateway) -> None:
    server = await gateway()
    env = client_env(server.url)

    streamed = await chat("--thread", "cli-1", "hello there", env=env)
    assert (streamed.code, streamed.out, streamed.err) == (0, "re: hello there\n", "")
    whole = await chat("--no-stream", "--thread", "cli-1", "and again", env=env)
    assert (whole.code, whole.out) == (0, "re: and again\n")
    assert await history(server.url, "cli-1") == [
        ("user", "hello there"),
        ("assistant", "re: hello there"),
        ("user", "and again"),
        ("assistant", "re: and again"),
    ]
    # --url and --key win over the environment.
    flags = await chat(
        "--url", server.url, "--key", ADMIN_KEY, "--no-stream", "flags",
        env=client_env("http://127.0.0.1:9", key="wrong"),
    )  # fmt: skip
    assert (flags.code, flags.out) == (0, "re: flags\n")


async def test_a_refused_key_an_unreachable_gateway_and_an_error_reply_fail_in_one_line(
    gateway, llm: FakeOpenAI
) -> None:
    server = await gateway()

    wrong = await chat("hi", env=client_env(server.url, key="not-the-key"))
    assert wrong.code == 1 and wrong.out.strip() == ""
    assert "refused the API key: 403 invalid_api_key" in one_error_line(wrong)

    missing = await chat("--no-stream", "hi", env=client_env(server.url, key=None))
    assert missing.code == 1
    assert "wants an API key (--key or ENECA_API_KEY): 401" in one_error_line(missing)

    nowhere = f"http://127.0.0.1:{free_port()}"
    down = await chat("hi", env=client_env(nowhere))
    assert down.code == 1
    assert f"cannot reach the gateway at {nowhere}: " in one_error_line(down)

    llm.default = FakeResponse(status=500)  # the model fails: the gateway's error reply
    for mode in ("--stream", "--no-stream"):
        failed = await chat(mode, "hi", env=client_env(server.url))
        assert failed.code == 1, mode
        assert "the gateway answered with an error: llm_unavailable" in one_error_line(failed)


async def test_a_stream_cut_by_the_gateway_dying_prints_what_came_and_fails(
    gateway, llm: FakeOpenAI
) -> None:
    server = await gateway()
    model_waits = asyncio.Event()
    llm.script(FakeResponse(text="partial answer that never ends", chunk_chars=8, hold=model_waits))
    process = await spawn("--stream", "tell me", env=client_env(server.url))
    assert process.stdout is not None and process.stderr is not None
    arrived = await asyncio.wait_for(process.stdout.readexactly(len("partial ")), 30)
    assert arrived == b"partial "
    await server.kill()  # the gateway dies mid-reply
    rest = await asyncio.wait_for(process.stdout.read(), 30)
    err = (await process.stderr.read()).decode()
    assert await process.wait() == 1
    assert rest == b"\n"
    run = Run(1, "", err)
    assert "the stream stopped before the reply was complete" in one_error_line(run)
    assert "after 8 characters in 1 chunks" in err
    model_waits.set()


async def test_the_repl_keeps_the_thread_starts_a_new_one_and_shows_history(gateway) -> None:
    server = await gateway()
    session = "hello\n/history\n/new\nsecond thread\n/history\n/quit\nnever sent\n"
    run = await chat(env=client_env(server.url), stdin=session)
    assert run.code == 0, run.err
    assert run.err == ""
    lines = run.out.splitlines()
    assert lines[0] == "bot> re: hello"
    first = re.fullmatch(r"thread (\S+): 2 messages", lines[1])
    assert first, lines
    assert lines[2:4] == ["you: hello", "bot: re: hello"]
    assert lines[4] == "(a new thread starts with the next message)"
    assert lines[5] == "bot> re: second thread"
    second = re.fullmatch(r"thread (\S+): 2 messages", lines[6])
    assert second and second.group(1) != first.group(1), lines
    assert lines[7:] == ["you: second thread", "bot: re: second thread"]

    # Ctrl-D (end of input) leaves too; --no-stream prints whole replies.
    eof = await chat("--no-stream", env=client_env(server.url), stdin="one\ntwo\n")
    assert (eof.code, eof.out) == (0, "bot> re: one\nbot> re: two\n")


async def test_check_runs_every_step_and_fails_on_the_first_broken_one(gateway) -> None:
    server = await gateway()
    passed = await chat("--check", env=client_env(server.url))
    assert passed.code == 0, passed.out + passed.err
    steps = [line.split()[:2] for line in passed.out.splitlines()[:5]]
    assert steps == [
        ["health", "ok"],
        ["chat", "ok"],
        ["stream", "ok"],
        ["history", "ok"],
        ["delete", "ok"],
    ]
    assert all(re.search(r" \d+ ms ", line) for line in passed.out.splitlines()[:5])
    assert passed.out.splitlines()[5].startswith(f"check passed: 5 steps at {server.url}")
    thread = re.search(r"thread (smoke-\w+)", passed.out)
    assert thread and await history(server.url, thread.group(1)) == []  # cleaned up

    refused = await chat("--check", env=client_env(server.url, key="wrong-key"))
    assert refused.code == 1
    assert [line.split()[:2] for line in refused.out.splitlines()[:5]] == [
        ["health", "ok"],
        ["chat", "FAIL"],
        ["stream", "skip"],
        ["history", "skip"],
        ["delete", "skip"],
    ]
    assert "refused the API key" in refused.out
    assert refused.out.splitlines()[5].startswith("check failed (chat)")


async def test_check_passes_through_nginx_under_the_prefix(gateway, nginx) -> None:
    server = await gateway(TRUSTED_PROXIES="127.0.0.1")
    proxy = await nginx(server)
    run = await chat("--check", "--url", f"{proxy.url}/ai-webhook/", env=client_env(""))
    assert run.code == 0, run.out + run.err
    print(run.out)  # the step times, for the record
