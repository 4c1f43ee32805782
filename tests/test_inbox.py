"""The delivery logic of one inbox, fed events directly (no I/O, no clock)."""

from __future__ import annotations

from hyperhive.core.inbox import Inbox


def test_messages_come_out_oldest_first() -> None:
    inbox = Inbox()
    for mid in (3, 1, 2):
        inbox.push(mid)
    assert [inbox.take(), inbox.take(), inbox.take(), inbox.take()] == [1, 2, 3, None]


def test_a_leased_message_is_not_handed_out_twice() -> None:
    inbox = Inbox()
    inbox.push(1)
    inbox.push(2)
    first = inbox.lease("h1", now=0, ttl=10)
    second = inbox.lease("h2", now=0, ttl=10)
    assert first is not None and second is not None
    assert (first.message_id, second.message_id) == (1, 2)
    assert inbox.lease("h3", now=0, ttl=10) is None
    assert first.expires_at == 10


def test_an_acked_lease_is_gone_for_good() -> None:
    inbox = Inbox()
    inbox.push(1)
    lease = inbox.lease("h", now=0, ttl=10)
    assert lease is not None
    assert inbox.ack(lease.token) == lease
    assert inbox.ack(lease.token) is None
    assert inbox.release_holder("h") == []
    assert len(inbox) == 0


def test_a_holder_going_away_requeues_its_leases_in_their_original_order() -> None:
    inbox = Inbox()
    for mid in (1, 2, 3):
        inbox.push(mid)
    a = inbox.lease("gone", now=0, ttl=10)
    b = inbox.lease("stays", now=0, ttl=10)
    assert a is not None and b is not None
    assert inbox.release_holder("gone") == [1]
    assert inbox.take() == 1
    assert inbox.take() == 3
    assert len(inbox) == 1  # "stays" still holds 2


def test_a_released_lease_returns_ahead_of_newer_messages() -> None:
    inbox = Inbox()
    inbox.push(1)
    lease = inbox.lease("h", now=0, ttl=10)
    assert lease is not None
    inbox.push(2)
    assert inbox.release(lease.token) == lease
    assert inbox.release(lease.token) is None
    assert inbox.take() == 1


def test_holders_are_told_apart_by_identity_not_equality() -> None:
    inbox = Inbox()
    inbox.push(1)
    holder, twin = ["same"], ["same"]
    assert inbox.lease(holder, now=0, ttl=1) is not None
    assert inbox.release_holder(twin) == []
    assert inbox.release_holder(holder) == [1]
