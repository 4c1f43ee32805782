"""A big hive's agents listing is kept and served again until a change of state or its age
says otherwise; a small hive's is always rendered (web/listing_cache.py). Fed by hand: a
clock that moves when told, a render that counts and can be held."""

from __future__ import annotations

import asyncio

import pytest

from hyperhive.web.listing_cache import (
    FRESH_FOR,
    MAX_STALE,
    MIN_AGENTS,
    ListingCache,
    Listings,
    Rendered,
    invalidates,
)

WAIT = 5.0


class Renders:
    def __init__(self, agents: int = MIN_AGENTS) -> None:
        self.count = 0
        self.agents = agents
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self) -> Rendered:
        self.count += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return Rendered(f"listing {self.count}".encode(), self.agents)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_fresh_listing_of_a_big_hive_is_served_again_without_a_render() -> None:
    renders, clock = Renders(), Clock()
    cache = ListingCache(renders, clock)
    assert await cache.get() == b"listing 1"
    clock.now += FRESH_FOR / 2
    assert await cache.get() == b"listing 1"
    assert renders.count == 1


async def test_an_aging_listing_is_served_once_more_while_the_next_is_rendered() -> None:
    renders, clock = Renders(), Clock()
    cache = ListingCache(renders, clock)
    await cache.get()
    clock.now += (FRESH_FOR + MAX_STALE) / 2
    assert await cache.get() == b"listing 1"  # not waited for
    await asyncio.wait_for(cache.settled(), WAIT)
    assert renders.count == 2 and await cache.get() == b"listing 2"
    clock.now += MAX_STALE + 0.01
    assert await cache.get() == b"listing 3"  # too old to serve: rendered for the reader


async def test_a_change_of_state_drops_the_kept_listing_and_a_render_in_flight() -> None:
    renders, clock = Renders(), Clock()
    listings = Listings(clock)
    cache = listings.of(("127.0.0.1", "http://127.0.0.1:7000/"), renders)
    await cache.get()
    listings.observe({"type": "message"})  # counters may lag; not a change of state
    assert await cache.get() == b"listing 1"
    listings.observe({"type": "agent_state", "agent": "bob"})
    assert await cache.get() == b"listing 2"
    renders.gate = asyncio.Event()
    listings.observe({"type": "approval_requested"})
    renders.started.clear()
    reading = asyncio.create_task(cache.get())  # a render starts, and is held
    await asyncio.wait_for(renders.started.wait(), WAIT)
    listings.observe({"type": "agent_added"})  # while it is made: it must not be kept
    renders.gate.set()
    assert await asyncio.wait_for(reading, WAIT) == b"listing 3"
    assert await cache.get() == b"listing 4"


async def test_readers_asking_at_once_share_one_render() -> None:
    renders = Renders()
    renders.gate = asyncio.Event()
    cache = ListingCache(renders, Clock())
    readers = [asyncio.create_task(cache.get()) for _ in range(10)]
    await asyncio.wait_for(renders.started.wait(), WAIT)
    renders.gate.set()
    assert await asyncio.wait_for(asyncio.gather(*readers), WAIT) == [b"listing 1"] * 10
    assert renders.count == 1


async def test_a_small_hives_listing_is_rendered_for_every_reader() -> None:
    renders = Renders(agents=MIN_AGENTS - 1)
    cache = ListingCache(renders, Clock())
    assert [await cache.get() for _ in range(3)] == [b"listing 1", b"listing 2", b"listing 3"]


async def test_a_failed_render_reaches_its_reader_and_the_next_one_renders_again() -> None:
    calls = 0

    async def failing() -> Rendered:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the core went away")
        return Rendered(b"ok", MIN_AGENTS)

    cache = ListingCache(failing, Clock())
    with pytest.raises(RuntimeError, match="went away"):
        await cache.get()
    assert await cache.get() == b"ok"


def test_which_events_are_changes_of_state() -> None:
    for kind in ("agent_state", "agent_added", "approval_decided", "budget", "stall", "login"):
        assert invalidates(kind), kind
    for kind in ("message", "delivered", "activity"):
        assert not invalidates(kind), kind


def test_the_kept_listings_are_bounded_whatever_hosts_clients_name() -> None:
    listings = Listings(Clock())
    for i in range(50):
        listings.of((f"host{i}", "x"), Renders())
    assert len(listings._caches) == Listings.MAX
