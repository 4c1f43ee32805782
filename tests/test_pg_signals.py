"""Signals between cores sharing a PostgreSQL store, against a real server: NOTIFY out,
LISTEN in, and what happens when the listener's connection is cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from hyperhive.core.db import Database, open_store
from hyperhive.core.db.pg_signals import PostgresSignals
from hyperhive.core.db.signals import AGENTS, MESSAGES
from support.postgres import postgres_url

__all__ = ["postgres_url"]  # the fixture

WAIT = 10.0


@pytest.fixture
async def rig(postgres_url: str) -> AsyncIterator[tuple[Database, PostgresSignals, str]]:
    store = open_store(postgres_url)
    signals = PostgresSignals(postgres_url, store, recheck=0.2)
    try:
        yield store, signals, postgres_url
    finally:
        await signals.close()
        store.close()


async def test_a_signal_reaches_every_listening_core_and_only_its_channels_handlers(
    rig: tuple[Database, PostgresSignals, str],
) -> None:
    _, signals, url = rig
    got: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    signals.listen(MESSAGES, lambda p: got.put_nowait((MESSAGES, p)))
    signals.listen(AGENTS, lambda p: got.put_nowait((AGENTS, p)))
    await signals.start()
    other = open_store(url)  # another core's store connection sends
    try:
        PostgresSignals(url, other).notify(MESSAGES, "7 bob")
        assert await asyncio.wait_for(got.get(), WAIT) == (MESSAGES, "7 bob")
        signals.notify(AGENTS, "carol")  # its own signals come back too: handlers are idempotent
        assert await asyncio.wait_for(got.get(), WAIT) == (AGENTS, "carol")
    finally:
        other.close()


async def test_a_failing_handler_does_not_stop_the_listener(
    rig: tuple[Database, PostgresSignals, str],
) -> None:
    _, signals, _ = rig
    got: asyncio.Queue[str] = asyncio.Queue()

    def bad(payload: str) -> None:
        raise RuntimeError(f"cannot handle {payload}")

    signals.listen(MESSAGES, bad)
    signals.listen(MESSAGES, got.put_nowait)
    await signals.start()
    signals.notify(MESSAGES, "1 a")
    signals.notify(MESSAGES, "2 b")
    assert [await asyncio.wait_for(got.get(), WAIT) for _ in range(2)] == ["1 a", "2 b"]


async def test_a_cut_listener_reconnects_and_resyncs_before_it_hears_again(
    rig: tuple[Database, PostgresSignals, str],
) -> None:
    _, signals, url = rig
    resyncs: asyncio.Queue[None] = asyncio.Queue()
    got: asyncio.Queue[str] = asyncio.Queue()
    signals.on_resync(lambda: resyncs.put_nowait(None))
    signals.listen(MESSAGES, got.put_nowait)
    await signals.start()
    await asyncio.wait_for(resyncs.get(), WAIT)  # the first connection resyncs at once
    with psycopg.connect(url, autocommit=True) as admin:
        cut = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        ).fetchall()
    assert cut and all(ok for (ok,) in cut)
    # While nobody listens, the store is looked at anyway (the resync right after the cut);
    # the reconnection resyncs again once it listens, before it hears anything.
    while not (signals.reconnects and signals.listening):
        await asyncio.wait_for(resyncs.get(), WAIT)
    signals.notify(MESSAGES, "9 after")
    assert await asyncio.wait_for(got.get(), WAIT) == "9 after"


async def test_the_recheck_runs_on_its_interval_however_busy_the_channel(
    rig: tuple[Database, PostgresSignals, str],
) -> None:
    _, signals, _ = rig
    resyncs: asyncio.Queue[float] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    signals.on_resync(lambda: resyncs.put_nowait(loop.time()))
    signals.listen(MESSAGES, lambda _: signals.notify(MESSAGES, "busy"))  # a signal storm
    await signals.start()
    signals.notify(MESSAGES, "busy")
    first = await asyncio.wait_for(resyncs.get(), WAIT)
    later = [await asyncio.wait_for(resyncs.get(), WAIT) for _ in range(3)]
    assert later[-1] - first >= 0.2 * 2  # not one per signal: one per interval
    assert signals.received > 3
