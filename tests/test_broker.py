"""The broker over real unix sockets and a real sqlite file, in-process core."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from hyperhive.client import Client, RemoteError
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from support.stores import peek
from support.wire import until_status

pytestmark = pytest.mark.usefixtures("both_stores")


async def connect(hive: Hive, name: str | None = None) -> Client:
    if name is None:
        return await Client.connect(hive.config.host_socket)
    return await Client.connect(hive.socket_path(hive.registry.get(name)))


def stored_count(config: Config) -> int:
    return int(peek(config, "SELECT count(*) FROM messages")[0][0])


async def test_each_recipient_gets_its_messages_in_the_order_they_were_sent(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    await hive.add_agent("bob", None)
    async with await connect(hive) as op, await connect(hive, "alice") as alice:
        for i in range(20):
            await op.call("send", to="alice" if i % 2 else "bob", body=f"m{i}")
        got = [(await alice.call("recv"))["message"]["body"] for _ in range(10)]
        assert got == [f"m{i}" for i in range(1, 20, 2)]
        assert await alice.call("recv") is None


async def test_a_waiting_recv_returns_within_milliseconds_of_a_send(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with await connect(hive) as op, await connect(hive, "alice") as alice:
        waiting = asyncio.create_task(alice.call("recv", wait=30))
        # The recv must be parked in the broker before we send; wait for that.
        await until_status(hive.config.host_socket, lambda s: s["waiting"] == {"alice": 1})
        await op.call("send", to="alice", body="wake up")
        sent_at = time.perf_counter()
        got = await asyncio.wait_for(waiting, 5)
        latency = time.perf_counter() - sent_at
    assert got["message"]["body"] == "wake up"
    # Woken by the send, not by a timer: even a 1 s poll would miss this bound. It is
    # loose because a loaded 2-core machine can take the CPU away for tens of ms;
    # bench/broker.py measures the real figure (p99 under a millisecond).
    assert latency < 0.5, f"woke after {latency * 1000:.1f} ms"


async def test_a_recv_that_waits_in_vain_answers_null_after_its_wait(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with await connect(hive, "alice") as alice:
        started = time.monotonic()
        assert await alice.call("recv", wait=0.2) is None
        # At least its wait, and never much more (a loaded machine is slow, not 10 s slow).
        assert 0.15 <= time.monotonic() - started < 10


async def test_a_lease_held_by_a_client_that_disconnects_is_delivered_again(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with await connect(hive) as op:
        await op.call("send", to="alice", body="important")
    crashing = await connect(hive, "alice")
    first = await crashing.call("recv", lease=True)
    assert first["lease"] is not None
    async with await connect(hive, "alice") as other:
        assert await other.call("recv") is None  # leased, so not handed out twice
        await crashing.close()
        again = await other.call("recv", wait=5, lease=True)
    assert again["message"]["id"] == first["message"]["id"]
    assert again["message"]["body"] == "important"


async def test_an_acked_message_is_never_delivered_again(config: Config) -> None:
    hive = Hive(config)
    await hive.start()
    await hive.add_agent("alice", None)
    async with await connect(hive) as op:
        await op.call("send", to="alice", body="once")
    async with await connect(hive, "alice") as alice:
        got = await alice.call("recv", lease=True)
        assert await alice.call("ack", lease=got["lease"]) == {"id": got["message"]["id"]}
        with pytest.raises(RemoteError) as err:
            await alice.call("ack", lease=got["lease"])
        assert err.value.code == "unknown_lease"
    await hive.shutdown(grace=2)
    # Not even after a restart of the core.
    restarted = Hive(config)
    await restarted.start()
    try:
        async with await connect(restarted, "alice") as alice:
            assert await alice.call("recv", wait=0.1) is None
    finally:
        await restarted.shutdown(grace=2)


async def test_unacked_leases_come_back_after_a_core_restart(config: Config) -> None:
    hive = Hive(config)
    await hive.start()
    await hive.add_agent("alice", None)
    async with await connect(hive) as op:
        await op.call("send", to="alice", body="a")
        await op.call("send", to="alice", body="b")
    alice = await connect(hive, "alice")
    await alice.call("recv", lease=True)
    await hive.shutdown(grace=2)
    await alice.close()
    restarted = Hive(config)
    await restarted.start()
    try:
        async with await connect(restarted, "alice") as again:
            bodies = [(await again.call("recv"))["message"]["body"] for _ in range(2)]
        assert bodies == ["a", "b"]
    finally:
        await restarted.shutdown(grace=2)


async def test_a_nacked_message_comes_back_before_newer_ones(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with await connect(hive) as op, await connect(hive, "alice") as alice:
        await op.call("send", to="alice", body="first")
        held = await alice.call("recv", lease=True)
        await op.call("send", to="alice", body="second")
        await alice.call("nack", lease=held["lease"])
        assert (await alice.call("recv"))["message"]["body"] == "first"


async def test_an_expired_lease_returns_to_the_queue(config: Config) -> None:
    hive = Hive(replace(config, lease_seconds=0.2))
    await hive.start()
    try:
        await hive.add_agent("alice", None)
        async with await connect(hive) as op, await connect(hive, "alice") as alice:
            await op.call("send", to="alice", body="slow")
            held = await alice.call("recv", lease=True)
            async with await connect(hive, "alice") as other:
                again = await other.call("recv", wait=10, lease=True)
            assert again["message"]["id"] == held["message"]["id"]
            with pytest.raises(RemoteError, match="expired or acked"):
                await alice.call("ack", lease=held["lease"])
    finally:
        await hive.shutdown(grace=2)


@pytest.mark.parametrize(
    ("to", "body", "code"),
    [
        ("bob", "hi", "not_allowed"),
        ("nobody", "hi", "unknown_agent"),
        ("hm1nd", "", "empty_body"),
        ("hm1nd", "   \n", "empty_body"),
        ("hm1nd", "x" * (256 * 1024 + 1), "too_large"),
        ("hm1nd", 42, "empty_body"),
        (["bob"], "hi", "unknown_agent"),
    ],
)
async def test_refused_sends_store_nothing_and_are_counted(
    hive: Hive, to: object, body: object, code: str
) -> None:
    await hive.add_agent("hm1nd", None)
    await hive.add_agent("alice", None)  # default allow-list: hm1nd, operator
    await hive.add_agent("bob", None)
    async with await connect(hive, "alice") as alice:
        with pytest.raises(RemoteError) as err:
            await alice.call("send", to=to, body=body)
    assert err.value.code == code
    assert stored_count(hive.config) == 0
    assert hive.broker.refusals[code if code != "unknown_agent" else "unknown_recipient"] == 1


async def test_the_allow_list_decides_whom_an_agent_may_message(hive: Hive) -> None:
    await hive.add_agent("hm1nd", None)
    await hive.add_agent("alice", ["bob"])
    await hive.add_agent("bob", None)
    await hive.add_agent("carol", ["*"])
    async with (
        await connect(hive, "alice") as alice,
        await connect(hive, "carol") as carol,
        await connect(hive, "hm1nd") as manager,
    ):
        await alice.call("send", to="bob", body="allowed")
        with pytest.raises(RemoteError, match="allow_send"):
            await alice.call("send", to="operator", body="not on my list")
        for to in ("alice", "bob", "operator", "hm1nd"):
            await carol.call("send", to=to, body="star")
            await manager.call("send", to=to, body="the manager may message everyone")
    assert stored_count(hive.config) == 9


async def test_an_agent_socket_speaks_only_as_its_agent(hive: Hive) -> None:
    await hive.add_agent("alice", ["*"])
    await hive.add_agent("bob", None)
    async with await connect(hive, "alice") as alice:
        assert await alice.call("whoami") == {"name": "alice", "role": "agent"}
        with pytest.raises(RemoteError) as err:
            await alice.call("send", to="bob", body="hi", **{"from": "operator"})
        assert err.value.code == "bad_request"
        sent = await alice.call("send", to="bob", body="hi")
    assert sent["from"] == "alice"
    assert [m.sender for m in hive.broker.history("bob", 10)] == ["alice"]


@pytest.mark.parametrize("op", ["status", "agents", "agent_add", "messages", "tail"])
async def test_an_agent_socket_refuses_operator_ops(hive: Hive, op: str) -> None:
    await hive.add_agent("alice", None)
    async with await connect(hive, "alice") as alice:
        with pytest.raises(RemoteError) as err:
            await alice.call(op, name="mallory")
        assert err.value.code == "forbidden"
        assert await alice.call("ping") == {"pong": True, "version": "0.1.0"}
    assert "mallory" not in hive.registry


async def test_every_stored_message_is_published_on_the_bus(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with await connect(hive) as watcher, await connect(hive) as op:
        events = watcher.stream("tail")
        first = asyncio.create_task(_next(events))
        await until_status(hive.config.host_socket, lambda s: s["subscribers"] == 1)
        await op.call("send", to="alice", body="seen")
        event = await asyncio.wait_for(first, 5)
    assert event["type"] == "message"
    assert event["message"]["body"] == "seen"


async def test_bad_agent_names_are_refused_before_anything_is_created(hive: Hive) -> None:
    async with await connect(hive) as op:
        for bad in ("Alice", "1abc", "toolongname", "a_b", "operator", "c0re", "", 7):
            with pytest.raises(RemoteError) as err:
                await op.call("agent_add", name=bad)
            assert err.value.code == "bad_name", bad
        await op.call("agent_add", name="ok-1")
        with pytest.raises(RemoteError, match="already exists"):
            await op.call("agent_add", name="ok-1")
    assert [a.name for a in hive.registry.all()] == ["ok-1"]
    assert sorted(p.name for p in (hive.config.run_dir / "agents").iterdir()) == ["ok-1"]


async def _next(events: AsyncIterator[Any]) -> Any:
    return await anext(events)


async def test_a_body_that_is_not_valid_unicode_is_refused_and_counted(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with await connect(hive) as op:
        with pytest.raises(RemoteError) as err:
            await op.call("send", to="alice", body="half a pair \ud800")
    assert err.value.code == "bad_request"
    assert stored_count(hive.config) == 0
    assert hive.broker.refusals["bad_text"] == 1
