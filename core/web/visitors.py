"""Visitor tokens: who a web page's visitor is, across reloads, without an account.

A token is ``v1.<deployment>.<visitor id>.<expiry>.<signature>``: the signature is an
HMAC-SHA256 (with ``SECRET_KEY``, or a secret generated once and kept in
``DATA_DIR/visitor_secret``, mode 0600) over everything before it. A token that is forged,
expired, from another deployment or malformed is refused as ``invalid_visitor_token``
(401); the page then starts afresh with a new one. Nothing is stored per visitor: the
token proves the id, and the conversation store records which threads an id owns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from core.contract.errors import ConfigError
from core.web.errors import ApiError

VERSION = "v1"
SECRET_FILE = "visitor_secret"
_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Longest token looked at (a few hundred bytes is plenty; anything longer is malformed).
MAX_TOKEN_CHARS = 300


@dataclass(frozen=True, slots=True)
class Visitor:
    id: str
    token: str
    #: Issued by this request (the client had none).
    new: bool = False

    @property
    def owner(self) -> str:
        """The owner recorded in the conversation store for this visitor's threads."""
        return f"visitor:{self.id}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_secret(data_dir: Path) -> bytes:
    """The secret kept in ``data_dir`` (created with mode 0600 on first use)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            logger.warning("{} was readable by others: its mode is now 0600", path)
        value = path.read_text().strip()
        if len(value) < 32:
            raise ConfigError(f"{path} is too short to be a secret; delete it") from None
        return value.encode()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    logger.info("generated the visitor-token secret in {}", path)
    return path.read_text().strip().encode()


class VisitorTokens:
    """Signs and checks visitor tokens for one deployment."""

    def __init__(
        self,
        secret: bytes,
        deployment: str = "",
        ttl_s: float = 30 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.deployment = deployment or hmac.new(secret, b"deployment", "sha256").hexdigest()[:12]
        self.ttl_s = ttl_s
        self._clock = clock

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, visitor_id: str | None = None) -> Visitor:
        visitor_id = visitor_id or _b64(secrets.token_bytes(16))
        expiry = int(self._clock() + self.ttl_s)
        payload = f"{VERSION}.{self.deployment}.{visitor_id}.{expiry}"
        return Visitor(visitor_id, f"{payload}.{self._sign(payload)}", new=True)

    def verify(self, token: str) -> Visitor:
        """The visitor a token names, or a 401 ``invalid_visitor_token`` saying why."""
        parts = token.strip().split(".") if len(token) <= MAX_TOKEN_CHARS else []
        if len(parts) != 5 or parts[0] != VERSION or not all(map(_PART.match, parts[1:])):
            raise _invalid("the visitor token is malformed")
        _, deployment, visitor_id, expiry, signature = parts
        if not expiry.isdigit():
            raise _invalid("the visitor token is malformed")
        if not hmac.compare_digest(deployment, self.deployment):
            raise _invalid("the visitor token is from another deployment")
        expected = self._sign(".".join(parts[:4]))
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise _invalid("the visitor token's signature is not valid")
        if int(expiry) < self._clock():
            raise _invalid("the visitor token has expired")
        return Visitor(visitor_id, token.strip())


def _invalid(message: str) -> ApiError:
    return ApiError(401, "invalid_visitor_token", f"{message}; start afresh without it")
