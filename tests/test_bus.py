"""The event bus: bounded queues per subscriber, and subscribers that want one kind."""

from __future__ import annotations

import asyncio

from hyperhive.core.bus import EventBus


async def test_a_subscriber_that_wants_one_kind_gets_only_that_kind_and_is_never_cut_off() -> None:
    bus = EventBus()
    logins = bus.subscribe(depth=2, wants=lambda e: e["type"] == "login")
    everything = bus.subscribe(depth=2)
    for i in range(1000):  # a busy hive's flood of other events
        bus.publish({"type": "message", "n": i})
    bus.publish({"type": "login", "agent": "bob"})
    assert everything.lagged and not logins.lagged
    async with asyncio.timeout(5):
        async for event in logins:
            assert event["type"] == "login" and event["agent"] == "bob"
            break
    assert bus.subscribers == 1  # the lagged one was cut off; the login one stays


async def test_a_subscriber_that_falls_behind_sees_its_stream_end() -> None:
    bus = EventBus()
    sub = bus.subscribe(depth=3)
    for i in range(10):
        bus.publish({"type": "message", "n": i})
    async with asyncio.timeout(5):
        got = [event["n"] async for event in sub]
    assert sub.lagged and len(got) == 2  # room was made for the end marker
