"""systemd's readiness protocol (``Type=notify``): ``READY=1`` once serving, ``STOPPING=1``
when shutting down, sent to the socket systemd names in ``NOTIFY_SOCKET``.

A dozen lines over a Unix datagram socket rather than the ``sdnotify`` package: that package
has had no release since 2017, swallows every error without a word, and would be one more
dependency for what ``sd_notify(3)`` specifies in a paragraph. Without ``NOTIFY_SOCKET`` (not
started by systemd) nothing is sent.
"""

from __future__ import annotations

import os
import socket

from loguru import logger


def notify(state: str) -> bool:
    """Send ``state`` (``"READY=1"``, ``"STOPPING=1"``, ``"STATUS=..."``); True when sent."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        logger.warning("NOTIFY_SOCKET {!r} is not a Unix socket path; not notifying", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        logger.warning("cannot notify systemd ({}): {}", state, exc)
        return False
    return True
