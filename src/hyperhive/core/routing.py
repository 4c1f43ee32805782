"""Which core queues a message, when several hosts' cores share one store.

Each core queues and leases only the messages of the agents it runs. A message for
another host's agent is committed by the sender's core and signalled to the others
(core/db/signals.py); the recipient's core checks the store and queues it. A
delivery of another host's agent's message is signalled back, so the sender's core
can give its sender the quota back (core/limits.py). A missed signal costs a wake's
delay, never a message: :meth:`Routing.recheck` queues, from the store, whatever no
signal brought.
"""

from __future__ import annotations

from collections.abc import Callable

from hyperhive.core.db import Database
from hyperhive.core.db.signals import DELIVERED, MESSAGES, Signals
from hyperhive.core.queues import Queues
from hyperhive.core.registry import Registry


class Routing:
    def __init__(
        self,
        conn: Database,
        registry: Registry,
        queues: Queues,
        signals: Signals,
        delivered: Callable[[str, int], None],
    ) -> None:
        """``delivered(sender, bytes)``: give a sender of this host its quota back."""
        self._conn = conn
        self._registry = registry
        self._queues = queues
        self._signals = signals
        self._delivered = delivered
        self._queue_unqueued()  # at start: nobody waits yet, this wakes no one
        self.found_by_recheck = 0  # messages a signal did not bring (core/metrics.py)
        signals.listen(MESSAGES, self._signalled_message)
        signals.listen(DELIVERED, self._signalled_delivery)
        signals.on_resync(self.recheck)

    def queue(self, recipient: str, mid: int) -> None:
        """``mid`` (committed) waits for ``recipient``: queue it here, or tell its host."""
        if self._registry.is_local(recipient):
            self._queues.push(recipient, mid)
        else:
            self._signals.notify(MESSAGES, f"{mid} {recipient}")

    def delivered(self, sender: str, size: int) -> None:
        """A message of ``sender``'s, ``size`` bytes, was delivered for good."""
        if sender in self._registry and not self._registry.is_local(sender):
            self._signals.notify(DELIVERED, f"{sender} {size}")
        else:
            self._delivered(sender, size)

    def recheck(self) -> int:
        """Whenever a signal may have been missed: queue what no signal brought."""
        found = self._queue_unqueued()
        self.found_by_recheck += found
        return found

    def _queue_unqueued(self) -> int:
        """Queue every undelivered message of this host's agents that no queue holds yet;
        how many that was. Statements run on the loop, so nothing is delivered between
        the read and the queueing."""
        known: dict[str, set[int]] = {}
        found = 0
        # Only this host's agents' rows: each core pays for its own backlog, not the hive's.
        for mid, recipient in self._conn.execute(
            "SELECT m.id, m.recipient FROM messages m JOIN agents a ON a.name = m.recipient"
            " WHERE m.delivered_at IS NULL AND m.dead_at IS NULL AND a.host = ? ORDER BY m.id",
            (self._registry.host,),
        ).fetchall():
            if not self._registry.is_local(recipient):
                continue  # moved to another host since the registry last heard
            ids = known.get(recipient)
            if ids is None:
                ids = known[recipient] = self._queues.known(recipient)
            if mid not in ids:
                self._queues.push(recipient, mid)
                ids.add(mid)
                found += 1
        return found

    def _signalled_message(self, payload: str) -> None:
        mid_text, _, recipient = payload.partition(" ")
        if not mid_text.isdigit() or not self._registry.is_local(recipient):
            return
        mid = int(mid_text)
        if mid in self._queues.known(recipient):
            return
        row = self._conn.execute(
            "SELECT 1 FROM messages WHERE id = ? AND recipient = ? AND delivered_at IS NULL"
            " AND dead_at IS NULL",
            (mid, recipient),
        ).fetchone()
        if row is not None:  # else: delivered or dead since; the store says, not the signal
            self._queues.push(recipient, mid)

    def _signalled_delivery(self, payload: str) -> None:
        sender, _, size = payload.partition(" ")
        if size.isdigit() and self._registry.is_local(sender):
            self._delivered(sender, int(size))
