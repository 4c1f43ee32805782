"""Every recipient's queue of undelivered message ids (core/inbox.py), the receives
parked on it, and the timers that end its leases.

In memory only: the broker commits to sqlite first and then tells this what happened.
Waiting is a future per parked receive, resolved by whatever queues an id: nothing polls.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import TypeGuard

from hyperhive.core.inbox import Inbox, Lease


def _is_token(token: object) -> TypeGuard[int]:
    # JSON true is a Python int equal to 1: it must not name lease 1.
    return isinstance(token, int) and not isinstance(token, bool)


class Queues:
    def __init__(self, clock: Callable[[], float], lease_seconds: float) -> None:
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._inboxes: defaultdict[str, Inbox] = defaultdict(Inbox)
        self._waiters: defaultdict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._expiry: dict[int, asyncio.TimerHandle] = {}
        self.closing = False

    def push(self, recipient: str, mid: int) -> None:
        """Queue ``mid`` (again, in its place) and wake whoever waits for ``recipient``."""
        self._inboxes[recipient].push(mid)
        self._wake(recipient)

    def known(self, recipient: str) -> set[int]:
        """The ids of ``recipient``'s queued or leased now."""
        inbox = self._inboxes.get(recipient)
        return inbox.ids() if inbox is not None else set()

    def take(self, recipient: str) -> int | None:
        """The oldest queued id, delivered for good (no lease)."""
        return self._inboxes[recipient].take()

    def lease(self, recipient: str, holder: object) -> Lease | None:
        """The oldest queued id, leased to ``holder`` until acked, released or timed out."""
        lease = self._inboxes[recipient].lease(holder, self._clock(), self._lease_seconds)
        if lease is None:
            return None
        loop = asyncio.get_running_loop()
        self._expiry[lease.token] = loop.call_later(
            self._lease_seconds, self._expire, recipient, lease.token
        )
        return lease

    def settle(self, recipient: str, token: object) -> Lease | None:
        """End lease ``token`` for good (acked or failed); None if it is not held."""
        lease = self._inboxes[recipient].ack(token) if _is_token(token) else None
        if lease is not None:
            self._cancel_timer(lease.token)
        return lease

    def release(self, recipient: str, token: object) -> Lease | None:
        """Give lease ``token``'s message back at once, in its place; None if not held."""
        lease = self._inboxes[recipient].release(token) if _is_token(token) else None
        if lease is not None:
            self._cancel_timer(lease.token)
            self._wake(recipient)
        return lease

    def release_holder(self, recipient: str, holder: object) -> list[int]:
        """The holder went away (connection closed): its leases return to the queue."""
        inbox = self._inboxes.get(recipient)
        if inbox is None:
            return []
        requeued = inbox.release_holder(holder)
        if requeued:
            self._wake(recipient)
        return requeued

    def holds(self, recipient: str, holder: object) -> bool:
        inbox = self._inboxes.get(recipient)
        return inbox is not None and inbox.holds(holder)

    def leases(self) -> list[tuple[str, int, float]]:
        """``(recipient, message id, leased at)`` of every lease open now (read only)."""
        return [
            (name, lease.message_id, lease.expires_at - self._lease_seconds)
            for name, inbox in self._inboxes.items()
            for lease in inbox.leases()
        ]

    async def wait(self, recipient: str, deadline: float) -> bool:
        """Park until ``recipient`` is woken (True) or the loop's clock passes ``deadline``."""
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters[recipient].append(waiter)
        try:
            await asyncio.wait_for(waiter, remaining)
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiters[recipient]:
                self._waiters[recipient].remove(waiter)
        return True

    def wake(self, recipient: str) -> None:
        """Wake whoever waits for ``recipient``: they look at its queue again."""
        self._wake(recipient)

    def waiting(self) -> dict[str, int]:
        return {name: len(w) for name, w in self._waiters.items() if w}

    def pending(self) -> dict[str, int]:
        return {name: len(inbox) for name, inbox in self._inboxes.items() if len(inbox)}

    def close(self) -> None:
        """Stop waiting: every parked receive is woken, and no lease times out any more."""
        self.closing = True
        for name in list(self._waiters):
            self._wake(name)
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()

    def _expire(self, recipient: str, token: int) -> None:
        self._expiry.pop(token, None)
        if self._inboxes[recipient].release(token) is not None:
            self._wake(recipient)

    def _cancel_timer(self, token: int) -> None:
        handle = self._expiry.pop(token, None)
        if handle is not None:
            handle.cancel()

    def _wake(self, recipient: str) -> None:
        for waiter in self._waiters.pop(recipient, ()):
            if not waiter.done():
                waiter.set_result(None)
