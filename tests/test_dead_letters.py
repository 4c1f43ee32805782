"""The ``fail`` op and the operator's dead letters (``dead_letters``, ``retry``, ``drop``)
over real unix sockets, an in-process core and its real sqlite file."""

from __future__ import annotations

from typing import Any

import pytest

from hyperhive.client import Client, RemoteError
from hyperhive.config import Config
from hyperhive.core.dead_letter import MAX_REASON
from hyperhive.core.hive import Hive
from support.bus import BusWatcher

pytestmark = pytest.mark.usefixtures("both_stores")

WAIT = 10.0


async def agent(hive: Hive, name: str) -> Client:
    return await Client.connect(hive.socket_path(hive.registry.get(name)))


async def operator(hive: Hive) -> Client:
    return await Client.connect(hive.config.host_socket)


async def kill(me: Client, mid: int, times: int, reason: str = "it broke") -> dict[str, Any]:
    """Lease ``mid`` and fail it ``times`` times; the last answer."""
    done: dict[str, Any] = {}
    for _ in range(times):
        got = await me.call("recv", wait=WAIT, lease=True)
        assert got["message"]["id"] == mid
        done = await me.call("fail", lease=got["lease"], reason=reason)
    return done


@pytest.fixture
async def alice(hive: Hive) -> str:
    await hive.add_agent("alice", None)
    return "alice"


async def test_a_failed_message_comes_back_at_once_in_its_place_until_its_third_failure(
    hive: Hive, alice: str
) -> None:
    watcher = BusWatcher(hive.bus)
    async with await operator(hive) as op, await agent(hive, alice) as me:
        first = (await op.call("send", to=alice, body="poison"))["id"]
        second = (await op.call("send", to=alice, body="harmless"))["id"]
        assert await kill(me, first, 1) == {"id": first, "attempts": 1, "dead": False}
        assert await kill(me, first, 1) == {"id": first, "attempts": 2, "dead": False}
        assert await kill(me, first, 1, "it broke again") == {
            "id": first,
            "attempts": 3,
            "dead": True,
        }
        got = await me.call("recv", wait=WAIT, lease=True)
        assert got["message"]["id"] == second  # the dead one is never handed out again
        await me.call("ack", lease=got["lease"])
        assert await me.call("recv", wait=0) is None
        dead = await watcher.next(lambda e: e.get("type") == "dead_letter")
        assert (dead["message"]["id"], dead["attempts"], dead["reason"]) == (
            first,
            3,
            "it broke again",
        )
        listed = await op.call("dead_letters")
    assert [(d["id"], d["to"], d["from"], d["attempts"], d["dead_reason"]) for d in listed] == [
        (first, alice, "operator", 3, "it broke again")
    ]
    assert listed[0]["body"] == "poison" and listed[0]["dead_at"] > 0
    assert hive.broker.pending() == {}


LEASE = object()  # stands for the lease the test holds


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"reason": "x"}, "unknown_lease"),
        ({"lease": "1", "reason": "x"}, "unknown_lease"),
        ({"lease": 999_999, "reason": "x"}, "unknown_lease"),
        ({"lease": True, "reason": "x"}, "unknown_lease"),
        ({"lease": LEASE, "reason": ""}, "bad_request"),
        ({"lease": LEASE, "reason": "   "}, "bad_request"),
        ({"lease": LEASE, "reason": 7}, "bad_request"),
        ({"lease": LEASE}, "bad_request"),
        ({"lease": LEASE, "reason": "x" * (MAX_REASON + 1)}, "bad_request"),
        ({"lease": LEASE, "reason": "x", "attempts": 0}, "bad_request"),
    ],
    ids=["no lease", "text lease", "unknown lease", "true", "empty", "blank", "number", "no reason",
         "too long", "stray argument"],
)  # fmt: skip
async def test_a_bad_fail_is_refused_and_changes_nothing(
    hive: Hive, alice: str, args: dict[str, Any], code: str
) -> None:
    async with await operator(hive) as op, await agent(hive, alice) as me:
        mid = (await op.call("send", to=alice, body="hello"))["id"]
        got = await me.call("recv", wait=WAIT, lease=True)
        call = {k: got["lease"] if v is LEASE else v for k, v in args.items()}
        with pytest.raises(RemoteError) as err:
            await me.call("fail", **call)
        assert err.value.code == code
        # The lease is still held and nothing was counted: it acks as if nothing happened.
        assert await me.call("ack", lease=got["lease"]) == {"id": mid}
    assert hive.broker.dead.listing(None, 10) == []
    row = hive.conn.execute("SELECT attempts FROM messages WHERE id = ?", (mid,)).fetchone()
    assert row == (0,)


async def test_retry_puts_a_dead_letter_back_with_its_attempts_reset(
    hive: Hive, alice: str
) -> None:
    watcher = BusWatcher(hive.bus)
    async with await operator(hive) as op, await agent(hive, alice) as me:
        mid = (await op.call("send", to=alice, body="poison"))["id"]
        await kill(me, mid, 3)
        retried = await op.call("retry", id=mid)
        assert (retried["id"], retried["body"]) == (mid, "poison")
        await watcher.next(lambda e: e.get("type") == "dead_letter_retried" and e["id"] == mid)
        assert await op.call("dead_letters") == []
        # A clean slate: three more tries before it is dead again.
        assert (await kill(me, mid, 2))["dead"] is False
        assert (await kill(me, mid, 1))["dead"] is True
        with pytest.raises(RemoteError) as err:
            await op.call("retry", id=mid + 1)
        assert err.value.code == "unknown_message"


async def test_drop_delivers_a_dead_letter_for_good_and_names_the_operator(
    hive: Hive, config: Config
) -> None:
    await hive.add_agent("alice", None)
    await hive.add_agent("bob", ["alice"])
    async with await agent(hive, "bob") as bob, await agent(hive, "alice") as me:
        mid = (await bob.call("send", to="alice", body="poison from bob"))["id"]
        await kill(me, mid, 3)
    # Still undelivered, so still held against bob's quota, across a restart too.
    assert hive.broker.limits.undelivered("bob") > 0
    await hive.shutdown(grace=1)
    revived = Hive(config)
    await revived.start()
    try:
        assert revived.broker.limits.undelivered("bob") > 0
        watcher = BusWatcher(revived.bus)
        async with await operator(revived) as op:
            assert [d["id"] for d in await op.call("dead_letters", agent="alice")] == [mid]
            assert await op.call("dead_letters", agent="bob") == []
            dropped = await op.call("drop", id=mid)
            assert dropped == {"id": mid, "to": "alice", "dropped_by": "operator"}
            await watcher.next(lambda e: e.get("type") == "dead_letter_dropped")
            assert await op.call("dead_letters") == []
            for op_name in ("drop", "retry"):
                with pytest.raises(RemoteError) as err:
                    await op.call(op_name, id=mid)
                assert err.value.code == "not_dead"
            whole = await op.call("message", id=mid)
        assert whole["body"] == "poison from bob"
        assert revived.broker.limits.undelivered("bob") == 0
        row = revived.conn.execute(
            "SELECT delivered_at, dead_reason FROM messages WHERE id = ?", (mid,)
        ).fetchone()
        assert row[0] is not None and row[1] == "it broke (dropped by operator)"
        async with await agent(revived, "alice") as me:
            assert await me.call("recv", wait=0) is None
    finally:
        await revived.shutdown(grace=1)
    hive.broker.close()  # the fixture's teardown shuts the original down once more


async def test_retry_and_drop_refuse_a_message_that_is_not_a_dead_letter(
    hive: Hive, alice: str
) -> None:
    async with await operator(hive) as op:
        mid = (await op.call("send", to=alice, body="alive and well"))["id"]
        for name in ("retry", "drop"):
            with pytest.raises(RemoteError) as err:
                await op.call(name, id=mid)
            assert (
                err.value.code == "not_dead" and f"#{mid} is not a dead letter" in err.value.message
            )
        for bad in ({}, {"id": "1"}, {"id": 0}, {"id": 1, "by": "mallory"}):
            with pytest.raises(RemoteError) as err:
                await op.call("drop", **bad)
            assert err.value.code == "bad_request"
        with pytest.raises(RemoteError) as err:
            await op.call("dead_letters", agent="nobody")
        assert err.value.code == "unknown_agent"
        with pytest.raises(RemoteError) as err:
            await op.call("dead_letters", limit=0)
        assert err.value.code == "bad_request"
    assert hive.broker.pending() == {alice: 1}


async def test_a_long_dead_letter_is_listed_as_a_preview(hive: Hive, alice: str) -> None:
    async with await operator(hive) as op, await agent(hive, alice) as me:
        mid = (await op.call("send", to=alice, body="é" * 100_000))["id"]
        await kill(me, mid, 3)
        (listed,) = await op.call("dead_letters")
    assert listed["truncated"] is True and listed["size"] == 200_000
    assert len(listed["body"].encode()) <= 4096


@pytest.mark.parametrize("op", ["dead_letters", "retry", "drop"])
async def test_an_agent_socket_cannot_touch_dead_letters(hive: Hive, alice: str, op: str) -> None:
    async with await agent(hive, alice) as me:
        with pytest.raises(RemoteError) as err:
            await me.call(op, id=1)
        assert err.value.code == "forbidden"
