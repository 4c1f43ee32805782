"""Idempotent sends: a key names one message of its sender's for a window.

The broker runs on a real sqlite file with an injected clock; the later tests go
through a real core's sockets, and the hive tool through a socket that loses an answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from hyperhive.agent.tools import HiveTools
from hyperhive.client import Client, RemoteError
from hyperhive.core.broker import Broker
from hyperhive.core.bus import EventBus
from hyperhive.core.db import Database, Dialect, Rows, open_store
from hyperhive.core.hive import Hive
from hyperhive.core.key_claims import CLAIM
from hyperhive.core.limits import SendPolicy
from hyperhive.core.message_log import INSERT
from hyperhive.core.registry import Registry
from hyperhive.core.send_keys import MAX_KEY, check_key
from hyperhive.errors import BadRequest, RateLimited
from support.answer_eater import AnswerEater
from support.stores import peek

pytestmark = pytest.mark.usefixtures("both_stores")

WINDOW = 3600.0
TIGHT = SendPolicy(rate=1, burst=1, bytes_rate=1e12, bytes_burst=10**12, quota=10**12)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def conn(store_target: str | Path) -> Iterator[Database]:
    connection = open_store(store_target)
    yield connection
    connection.close()


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
async def broker(conn: Database, bus: EventBus, clock: Clock) -> AsyncIterator[Broker]:
    registry = Registry(conn)
    for name in ("alice", "bob"):
        registry.add(name, ["*"])
    made = Broker(
        conn,
        registry,
        bus,
        max_body=1024,
        lease_seconds=60,
        limits=TIGHT,
        clock=clock,
        key_window=WINDOW,
    )
    yield made
    made.close()


def stored(conn: Database) -> list[tuple[Any, ...]]:
    return list(conn.execute("SELECT id, sender, body, key FROM messages ORDER BY id"))


# -- the key's shape ----------------------------------------------------------------


@pytest.mark.parametrize("key", ["k", "x" * MAX_KEY, " spaced ~!", "550e8400e29b41d4"])
def test_a_key_is_one_to_128_printable_ascii_characters(key: str) -> None:
    assert check_key(key) == key
    assert check_key(None) is None


@pytest.mark.parametrize(
    "key", ["", "x" * (MAX_KEY + 1), "tab\t", "line\n", "é", "\x7f", 7, 1.5, True, ["k"], {}]
)
def test_anything_else_is_not_a_key(key: object) -> None:
    with pytest.raises(BadRequest, match="'key'"):
        check_key(key)


# -- the broker, with its clock -------------------------------------------------------


async def test_a_keyed_send_sent_again_answers_the_original_and_stores_once(
    broker: Broker, conn: Database, bus: EventBus, clock: Clock
) -> None:
    events = bus.subscribe()
    first = broker.send("alice", "bob", "hello", key="k1")
    clock.now += 10
    again = broker.send("alice", "bob", "hello", key="k1")
    assert again.to_wire() == first.to_wire()
    assert first.to_wire()["key"] == "k1"
    assert stored(conn) == [(first.id, "alice", "hello", "k1")]
    assert broker.pending() == {"bob": 1}  # queued, and woken, once
    bus.close()
    assert [e["message"]["id"] async for e in events] == [first.id]  # published once


class Counted:
    """The real store, with the SQL of every statement run through it written down."""

    def __init__(self, store: Database) -> None:
        self.store = store
        self.statements: list[str] = []

    @property
    def dialect(self) -> Dialect:
        return self.store.dialect

    @property
    def shared(self) -> bool:
        return self.store.shared

    @property
    def location(self) -> str:
        return self.store.location

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        self.statements.append(sql)
        return self.store.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements.append(sql)
        self.store.executemany(sql, rows)

    def transaction(self) -> AbstractContextManager[None]:
        return self.store.transaction()

    def durability(self) -> str:
        return self.store.durability()

    def close(self) -> None:
        self.store.close()


async def test_a_first_keyed_send_is_one_statement_as_an_unkeyed_one_is(
    conn: Database, bus: EventBus, clock: Clock
) -> None:
    counted = Counted(conn)
    registry = Registry(counted)
    registry.add("bob", ["*"])
    broker = Broker(counted, registry, bus, max_body=1024, lease_seconds=60, clock=clock)
    try:
        counted.statements.clear()
        first = broker.send("operator", "bob", "hello", key="k1")
        assert counted.statements == [CLAIM]  # the key is claimed by the insert itself
        counted.statements.clear()
        broker.send("operator", "bob", "hello")
        assert counted.statements == [INSERT]
        # A retry: the claim finds the key held, and only then is the holder looked up.
        counted.statements.clear()
        assert broker.send("operator", "bob", "hello", key="k1").id == first.id
        assert counted.statements[0] == CLAIM and len(counted.statements) == 3
        assert [r[3] for r in stored(conn)] == ["k1", None]
    finally:
        broker.close()


async def test_a_retry_charges_no_rate(broker: Broker, clock: Clock) -> None:
    broker.send("alice", "bob", "the one token", key="k1")
    # The bucket is empty: a new message waits, a retry of the stored one does not.
    with pytest.raises(RateLimited):
        broker.send("alice", "bob", "another", key="k2")
    assert broker.send("alice", "bob", "the one token", key="k1").id == 1
    clock.now += 1.0  # one token back; a retry that had paid would leave none
    assert broker.send("alice", "bob", "another", key="k2").id == 2


async def test_the_same_key_from_another_sender_is_another_message(
    broker: Broker, conn: Database, clock: Clock
) -> None:
    a = broker.send("alice", "bob", "same words", key="shared")
    b = broker.send("bob", "alice", "same words", key="shared")
    assert a.id != b.id
    clock.now += 1
    assert broker.send("bob", "alice", "same words", key="shared").id == b.id
    assert [(r[1], r[3]) for r in stored(conn)] == [("alice", "shared"), ("bob", "shared")]


async def test_a_key_older_than_its_window_names_a_new_message(
    broker: Broker, conn: Database, clock: Clock
) -> None:
    old = broker.send("alice", "bob", "monday", key="daily")
    clock.now += WINDOW - 1
    assert broker.send("alice", "bob", "monday", key="daily").id == old.id
    clock.now += 1  # the window is over: the key is free
    new = broker.send("alice", "bob", "tuesday", key="daily")
    assert new.id != old.id and new.key == "daily"
    assert broker.get(old.id).key is None  # the old message keeps its body, not the key
    clock.now += 1
    assert broker.send("alice", "bob", "tuesday", key="daily").id == new.id
    assert len(stored(conn)) == 2


async def test_a_clock_stepped_back_keeps_the_key_live(
    broker: Broker, conn: Database, clock: Clock
) -> None:
    first = broker.send("alice", "bob", "hi", key="k")
    clock.now -= 10 * WINDOW
    assert broker.send("alice", "bob", "hi", key="k").id == first.id
    assert len(stored(conn)) == 1


@pytest.mark.parametrize(("to", "body"), [("alice", "hello"), ("bob", "hello, edited")])
async def test_a_live_key_sent_with_another_message_is_refused_and_stores_nothing(
    broker: Broker, conn: Database, to: str, body: str
) -> None:
    first = broker.send("alice", "bob", "hello", key="k1")
    with pytest.raises(BadRequest, match=f"key already names message #{first.id}"):
        broker.send("alice", to, body, key="k1")
    assert len(stored(conn)) == 1
    assert broker.refusals["key_conflict"] == 1


# -- through a real core's sockets ------------------------------------------------------


def count(hive: Hive) -> int:
    return int(peek(hive.config, "SELECT count(*) FROM messages")[0][0])


async def agent(hive: Hive, name: str) -> Client:
    return await Client.connect(hive.socket_path(hive.registry.get(name)))


@pytest.mark.parametrize("key", ["", "x" * (MAX_KEY + 1), 42, "key\n"])
async def test_a_bad_key_is_a_bad_request_and_stores_nothing(hive: Hive, key: object) -> None:
    await hive.add_agent("alice", ["bob"])
    await hive.add_agent("bob", None)
    async with await agent(hive, "alice") as alice:
        with pytest.raises(RemoteError, match=r"printable ASCII|must be a string") as err:
            await alice.call("send", to="bob", body="hi", key=key)
    assert err.value.code == "bad_request"
    assert count(hive) == 0
    assert hive.broker.pending() == {}


async def test_a_retry_is_answered_as_the_original_after_the_allow_list_and_registry_changed(
    hive: Hive,
) -> None:
    await hive.add_agent("alice", ["bob"])
    await hive.add_agent("bob", None)
    async with await agent(hive, "alice") as alice:
        first = await alice.call("send", to="bob", body="before the change", key="k1")
        hive.registry.set_allow_send("alice", ["operator"])
        assert await alice.call("send", to="bob", body="before the change", key="k1") == first
        with pytest.raises(RemoteError) as err:
            await alice.call("send", to="bob", body="after the change", key="k2")
        assert err.value.code == "not_allowed"
        await hive.remove_agent("bob")
        assert await alice.call("send", to="bob", body="before the change", key="k1") == first
    assert count(hive) == 1
    listed = await _log(hive)
    assert [(m["id"], m["key"]) for m in listed] == [(first["id"], "k1")]


async def _log(hive: Hive) -> list[dict[str, Any]]:
    async with await Client.connect(hive.config.host_socket) as op:
        listed: list[dict[str, Any]] = await op.call("messages")
        assert (await op.call("message", id=listed[0]["id"]))["key"] == listed[0]["key"]
        return listed


async def test_the_operator_s_sends_take_keys_too(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with await Client.connect(hive.config.host_socket) as op:
        first = await op.call("send", to="alice", body="once", key="op-1")
        assert await op.call("send", to="alice", body="once", key="op-1") == first
    assert count(hive) == 1 and first["from"] == "operator"


# -- the hive tool ---------------------------------------------------------------------


def tool_text(answer: dict[str, Any]) -> str:
    text: str = answer["content"][0]["text"]
    return text


async def send_tool(tools: HiveTools, to: str, body: str) -> dict[str, Any]:
    send = {t.name: t for t in tools.definitions()}["send"]
    answer: dict[str, Any] = await send.handler({"to": to, "body": body})
    return answer


async def test_the_send_tool_retries_a_lost_answer_with_its_key_and_stores_once(
    hive: Hive, short_dir: Path
) -> None:
    await hive.add_agent("alice", ["bob"])
    await hive.add_agent("bob", None)
    real = hive.socket_path(hive.registry.get("alice"))
    async with AnswerEater(short_dir / "eat.sock", real) as eater:
        tools = HiveTools(eater.path, retry_pauses=(0.0, 0.0))
        answer = await send_tool(tools, "bob", "exactly once")
    assert not answer.get("is_error"), answer
    sent = json.loads(tool_text(answer))
    assert len(eater.requests) == 2  # the first answer was lost, the retry got one
    keys = {r["args"]["key"] for r in eater.requests}
    assert len(keys) == 1 and sent["key"] in keys
    assert count(hive) == 1 and hive.broker.pending() == {"bob": 1}


async def test_each_send_tool_call_is_its_own_message_and_errors_are_not_retried(
    hive: Hive, short_dir: Path
) -> None:
    await hive.add_agent("alice", ["bob"])
    await hive.add_agent("bob", None)
    tools = HiveTools(hive.socket_path(hive.registry.get("alice")), retry_pauses=(0.0,))
    one = json.loads(tool_text(await send_tool(tools, "bob", "same words")))
    two = json.loads(tool_text(await send_tool(tools, "bob", "same words")))
    assert one["id"] != two["id"] and one["key"] != two["key"]
    refused = await send_tool(tools, "operator", "not on my list")
    assert refused["is_error"] and tool_text(refused).startswith("not_allowed:")
    assert count(hive) == 2


async def test_the_send_tool_gives_up_after_its_retries_with_a_clear_error(
    short_dir: Path,
) -> None:
    tools = HiveTools(short_dir / "nobody.sock", retry_pauses=(0.0, 0.0))
    answer = await send_tool(tools, "bob", "into the void")
    assert answer["is_error"]
    assert tool_text(answer).startswith("unreachable: cannot reach hive-c0re")
