"""What a durable channel's ``deliver_reply`` tells the outbox after one attempt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of sending one reply to a provider."""

    outcome: Outcome
    detail: str = ""
    #: Seconds the provider asked us to wait (HTTP 429 ``Retry-After``).
    retry_after: float | None = None

    @classmethod
    def delivered(cls, detail: str = "") -> DeliveryResult:
        return cls("delivered", detail)

    @classmethod
    def retry(cls, detail: str, retry_after: float | None = None) -> DeliveryResult:
        """A transient failure: connection error, timeout, 5xx, 429."""
        return cls("retry", detail, retry_after)

    @classmethod
    def failed(cls, detail: str) -> DeliveryResult:
        """A permanent failure: retrying would not help (4xx, a rejected request)."""
        return cls("failed", detail)


class DeliveryProgress:
    """What a channel has already sent of one reply, kept on its outbox row.

    A reply may take several provider calls (a long text split in parts, then a "finish").
    When one fails the outbox retries the whole reply; the channel reads what it recorded
    here and resumes after it, so nothing the provider confirmed is sent twice, also
    after a restart. ``save`` commits at once: call it after each confirmed call.
    """

    def __init__(
        self,
        state: Mapping[str, Any] | None = None,
        store: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self._state = dict(state or {})
        self._store = store

    def get(self, key: str, default: Any = None) -> Any:
        return self._state.get(key, default)

    @property
    def state(self) -> Mapping[str, Any]:
        return MappingProxyType(self._state)

    async def save(self, **changes: Any) -> None:
        """Merge ``changes`` (JSON values) into the recorded state and persist it."""
        self._state.update(changes)
        if self._store is not None:
            await self._store(dict(self._state))
