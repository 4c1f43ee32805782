"""The core settles its heap (collect, then freeze) once the agents hold still."""

from __future__ import annotations

import asyncio
import gc

from hyperhive.core.bus import EventBus
from hyperhive.core.heap import HeapSettler


async def test_a_burst_of_agent_changes_settles_the_heap_once_it_is_quiet() -> None:
    bus = EventBus()
    settler = HeapSettler(bus, delay=0.05)
    settler.start()
    try:
        assert gc.get_freeze_count() > 0  # settled at start
        for _ in range(5):
            bus.publish({"type": "agent_state", "agent": "a"})
        async with asyncio.timeout(10):
            await settler.quiet.wait()
        assert settler.settled == 1
    finally:
        await settler.close()
    assert gc.get_freeze_count() == 0


async def test_messages_flowing_never_schedule_a_settle() -> None:
    bus = EventBus()
    settler = HeapSettler(bus, delay=60)
    settler.start()
    try:
        settler.note({"type": "message", "id": 1})
        assert not settler.scheduled
        settler.note({"type": "agent_added", "agent": {"name": "b"}})
        assert settler.scheduled
    finally:
        await settler.close()
