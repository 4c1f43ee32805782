"""Two hosts, one hive: two real ``hive-c0re`` processes with their own state and run
dirs sharing one real PostgreSQL database, agents on each talking through their own
core's sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon, stop_daemon
from hyperhive.client import Client
from hyperhive.core.db import open_store
from hyperhive.core.db.pg_signals import RECHECK_SECONDS
from support.postgres import postgres_url
from support.two_hosts import socket_of, start_host

__all__ = ["postgres_url"]  # the fixture

WAIT = 10.0  # seconds: a bound for a wake that takes milliseconds


@pytest.fixture
def hosts(short_dir: Path, postgres_url: str) -> Iterator[tuple[Daemon, Daemon]]:
    a = start_host(short_dir, "alpha", postgres_url)
    b = start_host(short_dir, "beta", postgres_url)
    try:
        assert a.cli("agents", "add", "alice", "--allow-send", "bob").returncode == 0
        assert b.cli("agents", "add", "bob", "--allow-send", "alice").returncode == 0
        yield a, b
    finally:
        stop_daemon(b)
        stop_daemon(a)


async def exchange(a: Daemon, b: Daemon) -> tuple[dict[str, object], dict[str, object], float]:
    async with (
        await Client.connect(socket_of(a, "alice")) as alice,
        await Client.connect(socket_of(b, "bob")) as bob,
    ):
        waiting = asyncio.create_task(bob.call("recv", wait=WAIT))
        await bob.call("ping")  # bob's core has his receive parked before alice sends
        sent_at = time.perf_counter()
        await alice.call("send", to="bob", body="hello from alpha")
        got = await waiting
        woke = time.perf_counter() - sent_at
        await bob.call("send", to="alice", body="hello from beta")
        back = await alice.call("recv", wait=WAIT)
    return got, back, woke


def test_agents_on_two_hosts_exchange_messages_through_their_own_cores(
    hosts: tuple[Daemon, Daemon],
) -> None:
    a, b = hosts
    # Each core opened a socket for its own agent only.
    assert socket_of(a, "alice").exists() and not socket_of(a, "bob").exists()
    assert socket_of(b, "bob").exists() and not socket_of(b, "alice").exists()
    got, back, woke = asyncio.run(exchange(a, b))
    assert got is not None and back is not None
    assert got["message"]["body"] == "hello from alpha"  # type: ignore[index]
    assert back["message"]["body"] == "hello from beta"  # type: ignore[index]
    print(f"cross-host wake: {woke * 1000:.1f} ms")  # bench/broker.py measures it properly
    # Both cores see the whole hive, each agent on its host.
    for core, me in ((a, "alpha"), (b, "beta")):
        status = json.loads(core.cli("status", "--json").stdout)
        assert (status["store"], status["host"]) == ("postgresql", me)
        listed = {r["name"]: r for r in json.loads(core.cli("agents", "--json").stdout)}
        assert (listed["alice"]["host"], listed["bob"]["host"]) == ("alpha", "beta")


def hosts_seen_by(core: Daemon) -> dict[str, Any]:
    """``hive hosts`` of ``core`` once it has heard of both agents (bounded): the other
    core's add reaches it as a signal, a moment after the other's answer."""
    deadline = time.monotonic() + WAIT
    while True:
        shown = json.loads(core.cli("hosts", "--json").stdout)
        by_name = {h["name"]: h for h in shown["hosts"]}
        agents = [by_name.get(h, {}).get("agents") for h in ("alpha", "beta")]
        if agents == [["alice"], ["bob"]] or time.monotonic() > deadline:
            return {"this": shown["this"], **by_name}


def test_both_hosts_list_each_other_up_with_their_agents(hosts: tuple[Daemon, Daemon]) -> None:
    a, b = hosts
    for core, me in ((a, "alpha"), (b, "beta")):
        shown = hosts_seen_by(core)
        assert shown.pop("this") == me
        assert {n: (h["state"], h["agents"]) for n, h in shown.items()} == {
            "alpha": ("up", ["alice"]),
            "beta": ("up", ["bob"]),
        }


async def lease_then_lose(a: Daemon, b: Daemon) -> int:
    async with await Client.connect(socket_of(a, "alice")) as alice:
        sent = await alice.call("send", to="bob", body="do not lose me")
    async with await Client.connect(socket_of(b, "bob")) as bob:
        got = await bob.call("recv", wait=WAIT, lease=True)
        assert got["message"]["id"] == sent["id"] and got["lease"] is not None
        os.killpg(b.proc.pid, signal.SIGKILL)  # mid-lease: never acked
        b.proc.wait(timeout=10)
    async with await Client.connect(socket_of(a, "alice")) as alice:
        # Sent while beta is down: committed on alpha, waiting for beta.
        await alice.call("send", to="bob", body="sent while beta was down")
    return int(sent["id"])


async def receive_all(b: Daemon) -> list[tuple[int, str]]:
    got = []
    async with await Client.connect(socket_of(b, "bob")) as bob:
        for _ in range(2):
            one = await bob.call("recv", wait=WAIT, lease=True)
            got.append((one["message"]["id"], one["message"]["body"]))
            await bob.call("ack", lease=one["lease"])
        assert await bob.call("recv", wait=0) is None  # each exactly once
    return got


def test_a_lease_lost_with_its_hosts_core_is_delivered_once_that_core_is_back(
    short_dir: Path, hosts: tuple[Daemon, Daemon], postgres_url: str
) -> None:
    a, b = hosts
    first = asyncio.run(lease_then_lose(a, b))
    again = start_host(short_dir, "beta", postgres_url)
    try:
        got = asyncio.run(receive_all(again))
    finally:
        stop_daemon(again)
    assert got[0] == (first, "do not lose me")
    assert got[1][1] == "sent while beta was down"


async def lost_signal(a: Daemon, b: Daemon, database: str) -> tuple[dict[str, object], float]:
    async with await Client.connect(socket_of(b, "bob")) as bob:
        waiting = asyncio.create_task(bob.call("recv", wait=WAIT))
        await bob.call("ping")
        # A message committed with no NOTIFY after it: as if alice's core died between
        # its commit and its signal.
        with closing(open_store(database)) as store:
            store.execute(
                "INSERT INTO messages (sender, recipient, body, kind, created_at)"
                " VALUES ('alice', 'bob', 'no signal came', 'message', ?)",
                (time.time(),),
            )
        started = time.perf_counter()
        got = await waiting
        took = time.perf_counter() - started
    async with await Client.connect(b.host_socket) as op:
        metrics = await op.call("metrics")
    return {"got": got, "found": metrics["messages"]["found_by_recheck"]}, took


def test_a_message_whose_signal_was_lost_is_found_by_the_recheck_within_its_interval(
    hosts: tuple[Daemon, Daemon], postgres_url: str
) -> None:
    a, b = hosts
    seen, took = asyncio.run(lost_signal(a, b, postgres_url))
    got = seen["got"]
    assert isinstance(got, dict) and got["message"]["body"] == "no signal came"
    assert seen["found"] == 1
    assert took <= RECHECK_SECONDS + 1.0  # the re-check's bound, and a loaded machine's second
