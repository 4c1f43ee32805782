"""The broker: durable sends, long-poll receives, leases and acks.

A send is committed to the store before it is answered, then its id joins the
recipient's queue (core/queues.py) and wakes whoever waits there. The log's shape
and its reads are core/message_log.py's.

With a store shared by several hosts, each core queues and leases only the
messages of the agents it runs: a message for another host's agent is committed
here and signalled there (core/db/signals.py), whose core queues it. Leases live in
the memory of the recipient's core, so they die with it; its next start queues
every undelivered message of its agents again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Final

from hyperhive.config import Config
from hyperhive.core import message_log, previews
from hyperhive.core.bus import EventBus
from hyperhive.core.db import Database, returned_id
from hyperhive.core.db.signals import LocalSignals, Signals
from hyperhive.core.dead_letter import DEFAULT_MAX_ATTEMPTS, DeadLetters, check_reason
from hyperhive.core.inbox import Lease
from hyperhive.core.key_claims import KeyClaims
from hyperhive.core.limits import MESSAGE_OVERHEAD, SendLimits, SendPolicy
from hyperhive.core.message_log import INSERT, Kind, Message
from hyperhive.core.queues import Queues
from hyperhive.core.registry import Registry
from hyperhive.core.routing import Routing
from hyperhive.core.send_admission import Refused, admit
from hyperhive.core.send_keys import DEFAULT_WINDOW, check_key
from hyperhive.errors import BadRequest, UnknownAgent, UnknownLease
from hyperhive.names import CORE, MANAGER, OPERATOR

MAX_WAIT: Final = 3600.0


class Broker:
    @classmethod
    def for_config(
        cls,
        conn: Database,
        registry: Registry,
        bus: EventBus,
        config: Config,
        signals: Signals | None = None,
    ) -> Broker:
        """The hive's broker, with the limits and windows its Config names."""
        return cls(
            conn,
            registry,
            bus,
            max_body=config.max_body,
            lease_seconds=config.lease_seconds,
            limits=SendPolicy.from_config(config),
            key_window=config.send_key_window,
            max_attempts=config.max_attempts,
            signals=signals,
        )

    def __init__(
        self,
        conn: Database,
        registry: Registry,
        bus: EventBus,
        *,
        max_body: int,
        lease_seconds: float,
        limits: SendPolicy | None = None,
        clock: Callable[[], float] = time.time,
        key_window: float = DEFAULT_WINDOW,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        signals: Signals | None = None,
    ) -> None:
        self._conn = conn
        self._bytes = conn.dialect.octets_of("body")
        self._registry = registry
        self._bus = bus
        self._max_body = max_body
        self._clock = clock
        self._keys = KeyClaims(conn, clock, key_window, self._refuse)
        self._queues = Queues(clock, lease_seconds)
        # Recipients whose deliveries wait (a spent budget, core/gateway/meter.py).
        self._held: set[str] = set()
        self.dead = DeadLetters(conn, max_attempts)
        self.refusals: dict[str, int] = dict(conn.execute("SELECT name, value FROM counters"))
        held = conn.execute(
            f"SELECT sender, count(*), CAST(coalesce(sum({self._bytes}), 0) AS BIGINT)"
            " FROM messages"
            " WHERE delivered_at IS NULL GROUP BY sender"
        )
        self.limits = SendLimits(
            limits or SendPolicy(),
            {sender: int(size) + count * MESSAGE_OVERHEAD for sender, count, size in held},
        )
        # Every unacked message of this host's agents is queued again at start: leases
        # die with the connections that held them, which a restart has closed. Dead
        # letters wait for the operator, not in a queue.
        self.routing = Routing(
            conn, registry, self._queues, signals or LocalSignals(), self.limits.delivered
        )

    # -- sending ---------------------------------------------------------

    def send(self, sender: str, to: object, body: object, *, key: object = None) -> Message:
        """Store a message from ``sender`` (already authenticated) and wake ``to``.

        With a ``key`` that already names a message of ``sender``'s (core/send_keys.py),
        that message is the answer and nothing is stored, woken, published or charged,
        whatever the checks would say now: the first send was accepted, and a retry must
        not be told otherwise because an allow-list, a registry or a bucket changed since.
        The key is looked up only when that can matter (core/key_claims.py).
        """
        try:
            key = check_key(key)
        except BadRequest:
            self._refuse("bad_key")
            raise
        now = self._clock()
        try:
            size = admit(self._registry, self.limits, self._max_body, sender, to, body, now)
        except Refused as refused:
            retried = None if key is None else self._keys.retried(sender, key, to, body)
            if retried is not None:
                return self.get(retried)
            self._refuse(refused.reason)
            raise refused.error from None
        assert isinstance(to, str) and isinstance(body, str)  # admitted
        message = self._store(sender, to, body, "message", None, key)
        if message is None:  # the key is held: a retry, or free again past its window
            assert key is not None
            retried = self._keys.retried(sender, key, to, body)
            if retried is not None:
                return self.get(retried)
            message = self._store(sender, to, body, "message", None, key, reclaim=True)
            assert message is not None
        if sender != OPERATOR:
            self.limits.charge(sender, size, now, queued=to != OPERATOR)
        return message

    def post_event(self, to: str, name: str, payload: dict[str, Any]) -> Message:
        """A core event (``approval_decided``, ``agent_state``, …) into ``to``'s inbox."""
        message = self._store(CORE, to, name, "event", payload)
        assert message is not None  # no key: always stored
        return message

    def _store(
        self,
        sender: str,
        to: str,
        body: str,
        kind: Kind,
        payload: dict[str, Any] | None,
        key: str | None = None,
        reclaim: bool = False,
    ) -> Message | None:
        """None: ``key`` names a message of ``sender``'s already, and nothing was stored."""
        now = self._clock()
        text = json.dumps(payload) if payload is not None else None
        # Live readers (the bus) see exactly what a reader of the log sees later.
        payload = json.loads(text) if text is not None else None
        # The operator reads the log (dashboard, `hive messages`), not a queue:
        # a message to them is delivered once stored, and waits in no inbox.
        delivered = now if to == OPERATOR else None
        row = (sender, to, body, kind, text, now, delivered, key)
        if key is None:
            mid: int | None = returned_id(self._conn.execute(INSERT, row))
        else:
            mid = self._keys.reclaim(row, sender, key) if reclaim else self._keys.claim(row)
        if mid is None:
            return None
        message = Message(mid, sender, to, body, kind, payload, now, key)
        if delivered is None:
            self.routing.queue(to, message.id)
        self._bus.publish({"type": "message", "message": message.to_wire()})
        return message

    def _refuse(self, reason: str) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        self._conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1)"
            " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
            (reason,),
        )

    # -- receiving -------------------------------------------------------

    async def recv(
        self, recipient: str, wait: float, *, holder: object | None = None
    ) -> tuple[Message, Lease | None] | None:
        """The oldest undelivered message for ``recipient``, waiting up to ``wait`` s.

        With a ``holder`` the message is leased (ack it, or it comes back when
        the holder goes away or the lease runs out); without, it is delivered
        for good at once.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(wait, 0.0), MAX_WAIT)
        while True:
            got = None if recipient in self._held else self._pop(recipient, holder)
            if got is not None or self._queues.closing:
                return got
            if not await self._queues.wait(recipient, deadline):
                return None

    def _pop(self, recipient: str, holder: object | None) -> tuple[Message, Lease | None] | None:
        if holder is None:
            mid = self._queues.take(recipient)
            if mid is None:
                return None
            self._mark_delivered(mid)
            return self.get(mid), None
        lease = self._queues.lease(recipient, holder)
        if lease is None:
            return None
        return self.get(lease.message_id), lease

    def hold(self, recipient: str) -> None:
        """Deliver nothing more to ``recipient`` until :meth:`release`: its receives wait
        as if its queue were empty. Messages stay queued; leases out already are its."""
        self._held.add(recipient)

    def release(self, recipient: str) -> None:
        """Deliveries to ``recipient`` flow again; its parked receives look at once."""
        if recipient in self._held:
            self._held.discard(recipient)
            self._queues.wake(recipient)

    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    def ack(self, recipient: str, token: object) -> int:
        """Finish a lease: the message is delivered and never handed out again."""
        lease = self._queues.settle(recipient, token)
        if lease is None:
            raise UnknownLease(f"no lease {token!r} held by {recipient!r} (expired or acked?)")
        self._mark_delivered(lease.message_id)
        return lease.message_id

    def nack(self, recipient: str, token: object) -> int:
        """Give a leased message back at once, in its original place."""
        lease = self._queues.release(recipient, token)
        if lease is None:
            raise UnknownLease(f"no lease {token!r} held by {recipient!r} (expired or acked?)")
        return lease.message_id

    def fail(self, recipient: str, token: object, reason: object) -> dict[str, Any]:
        """Finish a lease as a failure of the message itself (core/dead_letter.py): one
        attempt is counted; below the limit the message is queued again, at it, dead."""
        text = check_reason(reason)  # before the lease is touched: bad input changes nothing
        lease = self._queues.settle(recipient, token)
        if lease is None:
            raise UnknownLease(f"no lease {token!r} held by {recipient!r} (expired or acked?)")
        mid = lease.message_id
        try:
            attempts, decided = self.dead.record_failure(mid, text, self._clock())
        except BaseException:
            self._queues.push(recipient, mid)  # not counted, so not lost either: handed out again
            raise
        if decided == "again":
            self._queues.push(recipient, mid)
        else:
            self._report_dead(mid, attempts, text)
        return {"id": mid, "attempts": attempts, "dead": decided == "dead"}

    def _report_dead(self, mid: int, attempts: int, reason: str) -> None:
        wire = previews.preview(self.get(mid).to_wire())
        self._bus.publish(
            {"type": "dead_letter", "message": wire, "attempts": attempts, "reason": reason}
        )
        # Like other agent trouble; not the manager's own letters (it would hear of its
        # failures in the inbox that fails), and never the body: it is not the manager's.
        if wire["to"] != MANAGER and MANAGER in self._registry:
            facts = {"message_id": mid, "from": wire["from"], "to": wire["to"]}
            facts |= {"attempts": attempts, "reason": reason}
            self.post_event(MANAGER, "dead_letter", facts)

    def retry_dead(self, mid: int) -> Message:
        """A dead letter back into its recipient's queue, its attempts reset."""
        recipient = self.dead.recipient_of(mid)
        if recipient not in self._registry:
            raise UnknownAgent(f"message #{mid} is for {recipient!r}, who is gone; drop it")
        self.dead.revive(mid)
        self.routing.queue(recipient, mid)
        self._bus.publish({"type": "dead_letter_retried", "id": mid, "to": recipient})
        return self.get(mid)

    def drop_dead(self, mid: int, by: str) -> dict[str, Any]:
        """A dead letter marked delivered for good, naming who dropped it."""
        recipient = self.dead.recipient_of(mid)
        self.dead.note_dropped(mid, by)
        self._mark_delivered(mid)
        self._bus.publish({"type": "dead_letter_dropped", "id": mid, "to": recipient, "by": by})
        return {"id": mid, "to": recipient, "dropped_by": by}

    def release_holder(self, recipient: str, holder: object) -> list[int]:
        """The holder went away (connection closed): its leases return to the queue."""
        return self._queues.release_holder(recipient, holder)

    def holds_lease(self, recipient: str, holder: object) -> bool:
        """Whether ``holder`` (a connection) has a message of ``recipient``'s leased now."""
        return self._queues.holds(recipient, holder)

    def _mark_delivered(self, mid: int) -> None:
        # fetchall: the UPDATE commits only once its RETURNING rows are all read.
        rows = self._conn.execute(
            "UPDATE messages SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL"
            f" RETURNING sender, {self._bytes}",
            (self._clock(), mid),
        ).fetchall()
        for sender, size in rows:
            self.routing.delivered(sender, int(size))

    def get(self, mid: int) -> Message:
        """One whole message of the log, delivered or not."""
        return message_log.get(self._conn, mid)

    # -- reading the log and shutting down ---------------------------------

    def history(self, agent: str | None, limit: int) -> list[Message]:
        """The newest ``limit`` messages (to or from ``agent``), oldest first."""
        return message_log.history(self._conn, agent, limit)

    def page(
        self,
        agent: str | None,
        limit: int,
        before: int | None = None,
        *,
        preview: int = previews.PREVIEW_BYTES,
        budget: int = previews.PAGE_BYTES,
    ) -> list[dict[str, Any]]:
        """A page of the log, bodies cut short (see :func:`message_log.page`)."""
        return message_log.page(self._conn, agent, limit, before, preview=preview, budget=budget)

    def waiting(self) -> dict[str, int]:
        """How many long-polls each recipient has parked right now."""
        return self._queues.waiting()

    def pending(self) -> dict[str, int]:
        return self._queues.pending()

    def leases(self) -> list[tuple[str, int, float]]:
        """``(recipient, message id, leased at)`` of every open lease (core/stall.py)."""
        return self._queues.leases()

    def message_totals(self) -> tuple[int, int]:
        """Messages (not core events) stored in all, and delivered of them (core/metrics.py)."""
        row = self._conn.execute(
            "SELECT count(*), count(delivered_at) FROM messages WHERE kind = 'message'"
        ).fetchone()
        return int(row[0]), int(row[1])

    def close(self) -> None:
        """Stop waiting: every pending ``recv`` answers ``None`` now."""
        self._queues.close()
