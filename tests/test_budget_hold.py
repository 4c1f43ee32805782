"""Broker.hold / Broker.release (what a budget pause does to deliveries), on a started
hive's real sockets: a held agent's receives wait as if its queue were empty, its messages
are kept, a lease it holds already is still its own, and a release wakes it at once."""

from __future__ import annotations

import asyncio

from hyperhive.client import Client
from hyperhive.core.hive import Hive
from support.wire import until_status

WAIT = 10.0


async def test_a_held_agent_receives_nothing_until_released_and_others_are_untouched(
    hive: Hive,
) -> None:
    await hive.add_agent("alice", None)
    await hive.add_agent("bob", None)
    async with (
        await Client.connect(hive.config.host_socket) as op,
        await Client.connect(hive.socket_path(hive.registry.get("alice"))) as alice,
        await Client.connect(hive.socket_path(hive.registry.get("bob"))) as bob,
    ):
        await op.call("send", to="alice", body="first")
        hive.broker.hold("alice")
        assert await alice.call("recv", wait=0) is None  # as if the queue were empty
        waiting = asyncio.create_task(alice.call("recv", wait=30, lease=True))
        await until_status(hive.config.host_socket, lambda s: s["waiting"].get("alice") == 1)
        await op.call("send", to="alice", body="second")
        await op.call("send", to="bob", body="for bob")
        assert (await bob.call("recv", wait=WAIT))["message"]["body"] == "for bob"
        await until_status(
            hive.config.host_socket,
            lambda s: s["pending"].get("alice") == 2 and s["waiting"].get("alice") == 1,
        )
        assert not waiting.done()
        hive.broker.release("alice")
        got = await asyncio.wait_for(waiting, WAIT)
        assert got["message"]["body"] == "first"  # kept, in order
        await alice.call("ack", lease=got["lease"])
        assert (await alice.call("recv", wait=WAIT))["message"]["body"] == "second"


async def test_a_lease_out_before_the_hold_can_still_be_acked_or_given_back(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with (
        await Client.connect(hive.config.host_socket) as op,
        await Client.connect(hive.socket_path(hive.registry.get("alice"))) as alice,
    ):
        await op.call("send", to="alice", body="one")
        await op.call("send", to="alice", body="two")
        first = await alice.call("recv", wait=WAIT, lease=True)
        second = await alice.call("recv", wait=WAIT, lease=True)
        hive.broker.hold("alice")
        await alice.call("ack", lease=first["lease"])  # the turn in flight finishes
        await alice.call("nack", lease=second["lease"])  # and gives back what it did not do
        assert await alice.call("recv", wait=0) is None
        assert hive.broker.pending() == {"alice": 1}
        hive.broker.release("alice")
        again = await alice.call("recv", wait=WAIT)
        assert again["message"]["body"] == "two"


async def test_releasing_an_agent_that_is_not_held_changes_nothing(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    hive.broker.release("alice")
    hive.broker.hold("alice")
    hive.broker.hold("alice")
    assert hive.broker.held() == {"alice"}
    hive.broker.release("alice")
    assert hive.broker.held() == frozenset()
