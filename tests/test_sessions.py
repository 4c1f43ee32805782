"""Browser sessions: random ids, bounded in number, ended by idleness and by age."""

from __future__ import annotations

from hyperhive.web.sessions import IDLE_S, LIFETIME_S, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_valid_until_it_idles_out() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    session = store.create()
    assert len(session) >= 32 and store.valid(session)
    assert not store.valid("made-up") and not store.valid("") and not store.valid("x" * 500)
    clock.now += IDLE_S - 1
    assert store.valid(session)  # using it keeps it alive
    clock.now += IDLE_S - 1
    assert store.valid(session)
    clock.now += IDLE_S + 1
    assert not store.valid(session)
    assert len(store) == 0


def test_a_session_in_daily_use_still_ends_after_its_lifetime() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    session = store.create()
    while clock.now + 3600 < 1000.0 + LIFETIME_S:
        clock.now += 3600
        assert store.valid(session)
    clock.now += 7200
    assert not store.valid(session)


def test_a_full_store_forgets_the_least_recently_used_session() -> None:
    clock = Clock()
    store = SessionStore(capacity=3, clock=clock)
    first, second, third = store.create(), store.create(), store.create()
    clock.now += 1
    assert store.valid(first)  # now the most recently used
    fourth = store.create()
    assert len(store) == 3
    assert not store.valid(second)
    assert all(store.valid(s) for s in (first, third, fourth))


def test_every_session_id_is_new() -> None:
    store = SessionStore()
    ids = {store.create() for _ in range(200)}
    assert len(ids) == 200
