"""Delivery of one recipient's messages: FIFO order, leases and acks.

Plain code without I/O or clocks: the broker feeds it events (a message
arrived, a client asked for one, a holder went away, a lease ran out) and acts on
what it answers. Only message ids live here; bodies stay in sqlite.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Final

_tokens: Final = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Lease:
    token: int
    message_id: int
    holder: object
    expires_at: float


class Inbox:
    """Undelivered message ids of one recipient.

    A message is either *queued* (in the heap, oldest id first) or *leased* to
    a holder until it is acked (gone for good) or released (queued again, in
    its original place, because ids order the heap).
    """

    def __init__(self) -> None:
        self._queued: list[int] = []
        self._leases: dict[int, Lease] = {}

    def __len__(self) -> int:
        return len(self._queued) + len(self._leases)

    @property
    def queued(self) -> int:
        return len(self._queued)

    def push(self, message_id: int) -> None:
        heapq.heappush(self._queued, message_id)

    def take(self) -> int | None:
        """Pop the oldest queued id for good (delivery without a lease)."""
        return heapq.heappop(self._queued) if self._queued else None

    def lease(self, holder: object, now: float, ttl: float) -> Lease | None:
        """Lease the oldest queued id to ``holder`` until ``now + ttl``."""
        if not self._queued:
            return None
        lease = Lease(next(_tokens), heapq.heappop(self._queued), holder, now + ttl)
        self._leases[lease.token] = lease
        return lease

    def ack(self, token: int) -> Lease | None:
        """Finish a lease; ``None`` if the token is not (or no longer) held."""
        return self._leases.pop(token, None)

    def release(self, token: int) -> Lease | None:
        """Give a leased message back to the queue (a nack)."""
        lease = self._leases.pop(token, None)
        if lease is not None:
            heapq.heappush(self._queued, lease.message_id)
        return lease

    def ids(self) -> set[int]:
        """Every id queued or leased here."""
        return {*self._queued, *(lease.message_id for lease in self._leases.values())}

    def leases(self) -> list[Lease]:
        """The leases open now (read only)."""
        return list(self._leases.values())

    def holds(self, holder: object) -> bool:
        """Whether ``holder`` has a lease open here."""
        return any(lease.holder is holder for lease in self._leases.values())

    def release_holder(self, holder: object) -> list[int]:
        """Requeue everything ``holder`` leased; returns the requeued ids."""
        tokens = [t for t, lease in self._leases.items() if lease.holder is holder]
        return [self._requeue(t) for t in tokens]

    def _requeue(self, token: int) -> int:
        lease = self._leases.pop(token)
        heapq.heappush(self._queued, lease.message_id)
        return lease.message_id
