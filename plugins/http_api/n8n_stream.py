"""The ``@n8n/chat`` widget's streaming mode (``enableStreaming: true``).

The widget (1.37, ``dist/chat.bundle.es.js``) posts the usual ``sendMessage`` body with
``Accept: text/plain`` and reads the response body as newline-delimited JSON objects:
``{"type": "begin" | "item" | "end" | "error", "content"?, "metadata": {"nodeId",
"runIndex", ...}}``. ``item`` contents are appended to the bot message of that node and
run, ``end`` closes it, ``error`` shows ``Error: <content>`` and closes it. A non-2xx
answer, or a body with no ``item``, is shown as an error by the widget.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from loguru import logger

from core import ReplyHandle, api_error, dumps

NODE = "eneca-bot"


def wants_stream(request: web.Request) -> bool:
    """True for the widget's streaming request: ``text/plain`` asked for by name (not
    ``text/*``, which n8n's HTTP Request node sends) and JSON not asked for."""
    types = [
        part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")
    ]
    return "text/plain" in types and "application/json" not in types


def _line(kind: str, content: str | None = None) -> bytes:
    chunk: dict[str, Any] = {
        "type": kind,
        "metadata": {
            "nodeId": NODE,
            "nodeName": NODE,
            "timestamp": int(time.time() * 1000),
            "runIndex": 0,
            "itemIndex": 0,
        },
    }
    if content is not None:
        chunk["content"] = content
    return (dumps(chunk) + "\n").encode()


async def stream_reply(
    request: web.Request, handle: ReplyHandle, headers: dict[str, str]
) -> web.StreamResponse:
    """Write the reply as it is produced: ``begin``, one ``item`` per piece, ``end``
    (or ``error`` with the reason)."""
    response = web.StreamResponse(
        headers={
            **headers,
            "Content-Type": "text/plain; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass each line on at once
        }
    )
    try:
        await response.prepare(request)
        await response.write(_line("begin"))
        async for delta in handle.chunks():
            if delta:
                await response.write(_line("item", delta))
        try:
            reply = await handle.reply()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # mapped (storage...) or logged by the bus with its id
            mapped = api_error(exc)
            message = mapped.message if mapped else "unexpected error; please try again"
            await response.write(_line("error", message))
        else:
            if reply.error is not None:
                await response.write(_line("error", reply.text))
            else:
                await response.write(_line("end"))
        await response.write_eof()
    except (ConnectionResetError, TimeoutError):
        handle.cancel()
        logger.info("n8n widget went away: its streamed reply was cancelled")
    except BaseException:
        handle.cancel()
        raise
    return response
