"""Replies this node has already claimed for delivery, handed to the outbox without a
statement of its own.

The outbox asks the queue for due replies after every answer and every attempt
(``schedule``). In the cluster most of those looks can be answered here: the answer's
final commit claims its reply when it is its conversation's only pending one, and the
statement recording a delivery claims the conversation's next reply if one is due; what
other nodes queue is told by ``NOTIFY`` (and the heartbeat's poll), which sets
:attr:`Ready.look`. So a TalkMe message costs no outbox look of its own: accept, lane,
history, final commit, delivery record (docs/cluster.md, "Round trips").

A look in the database always wins: it returns every reply claimed by this node, so the
replies kept here are only a shortcut and may be dropped at any time (:meth:`forget`).
"""

from __future__ import annotations

from core import PendingDelivery


class Ready:
    """Claimed replies waiting for the outbox, and whether it must look in the database."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[int, PendingDelivery]] = {}
        self._added = 0
        #: The next ``schedule`` reads the database (work may have been queued elsewhere).
        self.look = True
        #: Set by the cluster runtime, which calls :meth:`forget` whenever another node
        #: queued work or may have (a notification, the heartbeat's poll). Without it
        #: every ``schedule`` reads the database.
        self.told = False
        #: When the last look said the next attempt is due (a retry, or another node's
        #: claim to look at again).
        self.next_at: float | None = None
        #: Replies handed to the outbox and not recorded yet, by seq.
        self._handed: dict[int, PendingDelivery] = {}

    def add(self, item: PendingDelivery) -> None:
        self._added += 1
        self._items[item.seq] = (self._added, item)

    def forget(self) -> None:
        """Look in the database next time (the replies kept here stay claimed there)."""
        self._items.clear()
        self.look = True

    def settled(self, seq: int) -> None:
        """The outbox recorded the attempt of ``seq`` (or is about to)."""
        self._handed.pop(seq, None)

    def must_look(self, now: float, busy: set[str]) -> bool:
        due = self.next_at is not None and now >= self.next_at
        # A reply handed out whose conversation is free again but that was never
        # recorded: its record failed (the outbox tries again later), so look.
        unrecorded = [
            seq for seq, item in self._handed.items() if item.reply.conversation_id not in busy
        ]
        for seq in unrecorded:
            del self._handed[seq]
        return self.look or not self.told or due or bool(unrecorded)

    def begin_look(self) -> int:
        self.look = False
        return self._added

    def looked(
        self, started: int, due: list[PendingDelivery], next_at: float | None, busy: set[str]
    ) -> None:
        """A look that began at ``started`` returned ``due``: what it covered goes."""
        returned = {item.seq for item in due}
        for seq, (added, item) in list(self._items.items()):
            if seq in returned or (added <= started and item.reply.conversation_id not in busy):
                del self._items[seq]
        self.next_at = next_at
        self._handed.update((item.seq, item) for item in due)

    def take(self, busy: set[str], limit: int) -> list[PendingDelivery]:
        """The kept replies of conversations not in ``busy``, oldest first."""
        due = [
            item
            for _, (_, item) in sorted(self._items.items())
            if item.reply.conversation_id not in busy
        ][:limit]
        for item in due:
            del self._items[item.seq]
            self._handed[item.seq] = item
        return due
