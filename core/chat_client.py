"""``eneca-bot chat``: a small client of a running gateway's HTTP API.

    eneca-bot chat "How long does delivery take?"   # one message: print the reply, exit
    eneca-bot chat                                  # a REPL: /new, /history, /quit, Ctrl-D
    eneca-bot chat --check                          # the smoke test after a deploy

It talks HTTP only (``--url``, or ``ENECA_URL``; behind nginx ``https://host/ai-webhook``)
and sends the key of ``--key`` / ``ENECA_API_KEY`` as ``Authorization: Bearer``, which the
gateway accepts whatever ``API_KEY_HEADER`` is. It never reads the server's configuration.
Every failure is one line on stderr and a non-zero exit: a refused key, an unreachable
gateway, an error reply, a stream that stops half-way (after printing what arrived).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

DEFAULT_URL = "http://127.0.0.1:8000"
PROG = "eneca-bot chat"
CHECK_MESSAGE = "Smoke test after a deploy: please answer briefly."


class ChatError(Exception):
    """A failure told to the user in one line."""


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    chat = commands.add_parser(
        "chat",
        help="talk to a running gateway over HTTP (one message, a REPL, or --check)",
        description="A client of a running gateway's HTTP API, for smoke tests after a deploy.",
    )
    chat.add_argument("message", nargs="?", help="send this message, print the reply, exit")
    chat.add_argument("--url", help=f"the gateway's base URL (ENECA_URL; default {DEFAULT_URL})")
    chat.add_argument("--key", help="API key (ENECA_API_KEY)")
    chat.add_argument("--thread", help="the thread to talk in (default: a new one)")
    mode = chat.add_mutually_exclusive_group()
    mode.add_argument(
        "--stream", dest="stream", action="store_true", default=True,
        help="show the reply as it arrives (default)",
    )  # fmt: skip
    mode.add_argument(
        "--no-stream", dest="stream", action="store_false", help="wait for the whole reply"
    )
    chat.add_argument(
        "--check",
        action="store_true",
        help="run health, chat, stream, history and delete once; exit 0 only if all pass",
    )
    chat.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for one answer (300)"
    )
    return chat


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="eneca-bot")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["chat", *argv])


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    client = Client(
        (args.url or os.environ.get("ENECA_URL") or DEFAULT_URL).rstrip("/"),
        args.key or os.environ.get("ENECA_API_KEY") or None,
        args.timeout,
    )
    if args.check:
        if args.message:
            return _fail("--check sends its own messages; leave MESSAGE out")
        return asyncio.run(client.run(lambda: check(client)))
    if args.message is not None:
        return asyncio.run(client.run(lambda: one_shot(client, args)))
    return asyncio.run(client.run(lambda: repl(client, args, sys.stdin, sys.stdout)))


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return 1


@dataclass
class Answer:
    text: str
    thread_id: str
    chunks: int = 0
    first_chunk_s: float | None = None


@dataclass
class Client:
    url: str
    key: str | None
    timeout: float
    session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def run(self, body: Callable[[], Awaitable[int]]) -> int:
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as self.session:
            try:
                return await body()
            except ChatError as exc:
                return _fail(str(exc))
            except KeyboardInterrupt:
                return 130

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        return headers

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, parsed JSON)`` of one call; ChatError when it cannot be made."""
        assert self.session is not None
        try:
            async with self.session.request(
                method, self.url + path, json=body, headers=self._headers()
            ) as response:
                data = self._json(response, await response.read())
                if not isinstance(data, dict):
                    raise ChatError(f"{response.status} from {response.url}: not a JSON object")
                return response.status, data
        except aiohttp.ClientConnectorError as exc:
            raise ChatError(f"cannot reach the gateway at {self.url}: {_reason(exc)}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChatError(f"{method} {self.url}{path} failed: {_reason(exc)}") from None

    def _json(self, response: aiohttp.ClientResponse, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise ChatError(
                f"{response.status} from {response.url} is not JSON ({kind}): is "
                f"{self.url} the gateway's base URL?"
            ) from None

    async def chat(self, message: str, thread: str | None) -> Answer:
        body = {"message": message, **({"thread_id": thread} if thread else {})}
        status, data = await self.request("POST", "/api/chat", body)
        if status != 200:
            raise ChatError(refusal(status, data))
        if not data.get("success"):
            raise ChatError(f"the gateway answered with an error: {error_text(data.get('error'))}")
        return Answer(data.get("response") or "", data.get("thread_id") or thread or "")

    async def stream(self, message: str, thread: str | None, show: Callable[[str], None]) -> Answer:
        """``POST /api/chat/stream``: ``show`` gets each piece as it arrives."""
        assert self.session is not None
        body = {"message": message, **({"thread_id": thread} if thread else {})}
        headers = {**self._headers(), "Accept": "text/event-stream"}
        answer = Answer("", thread or "")
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.url + "/api/chat/stream", json=body, headers=headers
            ) as response:
                if response.status != 200:
                    data = self._json(response, await response.read())
                    raise ChatError(refusal(response.status, data))
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    event = json.loads(line[5:])
                    kind = event.get("type")
                    if kind == "metadata":
                        answer.thread_id = event.get("thread_id") or answer.thread_id
                    elif kind == "chunk":
                        if answer.first_chunk_s is None:
                            answer.first_chunk_s = time.perf_counter() - started
                        answer.chunks += 1
                        answer.text += event.get("content", "")
                        show(event.get("content", ""))
                    elif kind == "done":
                        answer.text = event.get("response", answer.text)
                        answer.thread_id = event.get("thread_id") or answer.thread_id
                        return answer
                    elif kind == "error":
                        raise ChatError(f"the gateway answered with an error: {error_text(event)}")
        except aiohttp.ClientConnectorError as exc:
            raise ChatError(f"cannot reach the gateway at {self.url}: {_reason(exc)}") from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ChatError(cut_short(answer, _reason(exc))) from None
        raise ChatError(cut_short(answer, "the connection closed"))


def cut_short(answer: Answer, why: str) -> str:
    return (
        f"the stream stopped before the reply was complete ({why}) after "
        f"{len(answer.text)} characters in {answer.chunks} chunks"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        if isinstance(error.errno, int) and error.errno > 0:
            return os.strerror(error.errno).lower()  # "connection refused"
        return error.strerror or str(error) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def error_text(error: Any) -> str:
    if isinstance(error, dict):
        code = error.get("code", "error")
        return f"{code}: {error.get('message', '')}".rstrip(": ")
    return str(error)


def refusal(status: int, data: Any) -> str:
    """One line for an error status: what it means for the user, and the gateway's words."""
    error = data.get("error") if isinstance(data, dict) else None
    detail = f"{status} {error_text(error)}" if error else str(status)
    if status == 401:
        return f"the gateway wants an API key (--key or ENECA_API_KEY): {detail}"
    if status == 403:
        return f"the gateway refused the API key: {detail}"
    return f"the gateway answered {detail}"


def _print(text: str, out: TextIO = sys.stdout) -> None:
    out.write(text)
    out.flush()


async def one_shot(client: Client, args: argparse.Namespace) -> int:
    if args.stream:
        shown: list[str] = []

        def show(piece: str) -> None:
            shown.append(piece)
            _print(piece)

        try:
            await client.stream(args.message, args.thread, show)
        finally:
            if shown:  # end the line the reply (or what came of it) was printed on
                _print("\n")
    else:
        answer = await client.chat(args.message, args.thread)
        _print(answer.text + "\n")
    return 0


async def repl(client: Client, args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    """Lines from ``stdin`` are messages; ``/new``, ``/history``, ``/quit`` (or EOF) are
    commands. A failed message prints its error and the REPL goes on; the exit status says
    whether any failed."""
    thread: str | None = args.thread
    interactive = stdin.isatty()
    failures = 0
    if interactive:
        _print(f"eneca-bot at {client.url}; /new, /history, /quit (or Ctrl-D)\n", out)
    while True:
        if interactive:
            _print("you> ", out)
        line = await asyncio.to_thread(stdin.readline)
        if not line:  # Ctrl-D
            break
        text = line.strip()
        if not text:
            continue
        try:
            if text == "/quit":
                break
            if text == "/new":
                thread = None
                _print("(a new thread starts with the next message)\n", out)
            elif text == "/history":
                await show_history(client, thread, out)
            elif args.stream:
                _print("bot> ", out)
                try:
                    answer = await client.stream(text, thread, lambda piece: _print(piece, out))
                finally:
                    _print("\n", out)
                thread = answer.thread_id
            else:
                answer = await client.chat(text, thread)
                thread = answer.thread_id
                _print(f"bot> {answer.text}\n", out)
        except ChatError as exc:
            failures += 1
            print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
    return 1 if failures else 0


async def show_history(client: Client, thread: str | None, out: TextIO) -> None:
    if thread is None:
        _print("(no thread yet: send a message first)\n", out)
        return
    status, data = await client.request("GET", f"/api/threads/{thread}/messages")
    if status != 200:
        raise ChatError(refusal(status, data))
    _print(f"thread {thread}: {len(data['messages'])} messages\n", out)
    for turn in data["messages"]:
        who = "you" if turn["role"] == "user" else "bot"
        _print(f"{who}: {turn['content']}\n", out)


# -- the deploy smoke check -------------------------------------------------------------

Step = Callable[[], Awaitable[str]]


async def check(client: Client) -> int:
    """health, chat, stream, history, delete: one line each with its time; exit 0 only
    when every step passed. Once a step fails the rest are skipped, except deleting the
    thread the check created."""
    thread = f"smoke-{uuid.uuid4().hex[:12]}"
    replies: list[str] = []

    async def health() -> str:
        status, data = await client.request("GET", "/health")
        if status == 200 and data.get("status") == "ok":
            return f"{data['status']}, version {data.get('version')}"
        if isinstance(data, dict) and "plugins" in data:
            failing = [name for name, c in data["plugins"].items() if not c.get("ok", True)]
            raise ChatError(f"{status} {data.get('status')}: failing {', '.join(failing)}")
        raise ChatError(refusal(status, data))

    async def chat() -> str:
        answer = await client.chat(CHECK_MESSAGE, thread)
        replies.append(answer.text)
        return f"thread {thread}: {_short(answer.text)}"

    async def stream() -> str:
        answer = await client.stream(CHECK_MESSAGE, thread, lambda _: None)
        replies.append(answer.text)
        first = f"{answer.first_chunk_s * 1000:.0f} ms" if answer.first_chunk_s else "none"
        return f"{answer.chunks} chunks, first after {first}: {_short(answer.text)}"

    async def history() -> str:
        status, data = await client.request("GET", f"/api/threads/{thread}/messages")
        if status != 200:
            raise ChatError(refusal(status, data))
        turns = [(m["role"], m["content"]) for m in data["messages"]]
        expected = [
            ("user", CHECK_MESSAGE),
            ("assistant", replies[0]),
            ("user", CHECK_MESSAGE),
            ("assistant", replies[1]),
        ]
        if turns != expected:
            raise ChatError(f"the thread holds {len(turns)} turns, not the 4 just exchanged")
        return f"{len(turns)} turns, as sent"

    async def delete() -> str:
        status, data = await client.request("DELETE", f"/api/threads/{thread}")
        if status != 200:
            raise ChatError(refusal(status, data))
        return f"thread removed ({data.get('removed')} turns)"

    steps: list[tuple[str, Step]] = [
        ("health", health),
        ("chat", chat),
        ("stream", stream),
        ("history", history),
        ("delete", delete),
    ]
    failed: list[str] = []
    started = time.perf_counter()
    for name, step in steps:
        if failed and not (name == "delete" and replies):
            print(f"{name:<8} skip", flush=True)
            continue
        began = time.perf_counter()
        try:
            detail = await step()
        except ChatError as exc:
            failed.append(name)
            print(f"{name:<8} FAIL {_ms(began):>7}  {exc}", flush=True)
        else:
            print(f"{name:<8} ok   {_ms(began):>7}  {detail}", flush=True)
    total = _ms(started)
    if failed:
        print(f"check failed ({', '.join(failed)}) at {client.url} in {total}", flush=True)
        return 1
    print(f"check passed: {len(steps)} steps at {client.url} in {total}", flush=True)
    return 0


def _ms(since: float) -> str:
    return f"{(time.perf_counter() - since) * 1000:.0f} ms"


def _short(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return json.dumps(flat if len(flat) <= limit else flat[: limit - 1] + "…", ensure_ascii=False)
