"""Per-agent send limits: the rate buckets and the undelivered-bytes quota.

The broker runs on a real sqlite file with an injected clock, so refills are exact and
nothing waits; the last tests go through a real core's sockets.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import Daemon
from hyperhive.client import Client, RemoteError
from hyperhive.config import Config
from hyperhive.core.broker import Broker
from hyperhive.core.bus import EventBus
from hyperhive.core.db import Database, open_store
from hyperhive.core.hive import Hive
from hyperhive.core.limits import MESSAGE_OVERHEAD, SendPolicy, TokenBucket, charge
from hyperhive.core.registry import Registry
from hyperhive.errors import ClientError, QuotaExceeded, RateLimited

pytestmark = pytest.mark.usefixtures("both_stores")

KIB = 1024
MIB = 1024 * KIB
ROOMY = SendPolicy(rate=1e6, burst=10**6, bytes_rate=1e12, bytes_burst=10**12, quota=10**12)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def conn(store_target: str | Path) -> Iterator[Database]:
    connection = open_store(store_target)
    registry = Registry(connection)
    for name in ("alice", "bob"):
        registry.add(name, ["*"])
    yield connection
    connection.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Brokers:
    """Builds brokers over the one database, as a restarted core would; closes them all."""

    def __init__(self, conn: Database, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock
        self._made: list[Broker] = []

    def __call__(self, policy: SendPolicy) -> Broker:
        broker = Broker(
            self._conn,
            Registry(self._conn),
            EventBus(),
            max_body=256 * KIB,
            lease_seconds=60,
            limits=policy,
            clock=self._clock,
        )
        self._made.append(broker)
        return broker

    def close(self) -> None:
        for broker in self._made:
            broker.close()


@pytest.fixture
async def brokers(conn: Database, clock: Clock) -> AsyncIterator[Brokers]:
    made = Brokers(conn, clock)
    yield made
    made.close()


def stored(conn: Database) -> int:
    count: int = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    return count


# -- the token bucket ---------------------------------------------------------------


def test_a_bucket_starts_full_and_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2, burst=4, now=0.0)
    assert bucket.wait(4, 0.0) == 0
    bucket.take(4, 0.0)
    assert bucket.wait(1, 0.0) == pytest.approx(0.5)
    assert bucket.wait(1, 0.5) == 0
    assert bucket.wait(4, 100.0) == 0
    bucket.take(4, 100.0)
    assert bucket.wait(1, 100.0) == pytest.approx(0.5)  # the burst capped the refill


def test_a_bucket_does_not_drain_when_the_clock_steps_back() -> None:
    bucket = TokenBucket(rate=1, burst=2, now=100.0)
    bucket.take(1, 100.0)
    assert bucket.wait(1, 50.0) == 0
    assert bucket.wait(2, 50.0) == pytest.approx(1.0)


def test_a_cost_over_the_burst_is_paid_with_a_full_bucket() -> None:
    bucket = TokenBucket(rate=1, burst=2, now=0.0)
    assert bucket.wait(10, 0.0) == 0
    bucket.take(10, 0.0)
    assert bucket.wait(10, 1.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 5), (float("inf"), 1)])
def test_a_bucket_refuses_a_rate_or_burst_that_is_not_positive(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate, burst, 0.0)


# -- rates --------------------------------------------------------------------------


async def test_an_agent_that_floods_is_rate_limited_and_recovers_when_the_bucket_refills(
    conn: Database, clock: Clock, brokers: Brokers
) -> None:
    broker = brokers(replace(ROOMY, rate=20, burst=100))
    for i in range(100):
        broker.send("alice", "bob", f"m{i}")
    with pytest.raises(RateLimited, match=r"retry in 0\.050 s") as err:
        broker.send("alice", "bob", "one too many")
    assert err.value.code == "rate_limited"
    assert err.value.retry_after == pytest.approx(0.05)
    assert stored(conn) == 100
    assert broker.refusals["rate_limited"] == 1
    clock.now += 0.05
    broker.send("alice", "bob", "refilled by one")
    with pytest.raises(RateLimited):
        broker.send("alice", "bob", "and no more")
    clock.now += 60
    for i in range(100):
        broker.send("alice", "bob", f"again {i}")
    with pytest.raises(RateLimited):
        broker.send("alice", "bob", "the burst is the most a pause buys")
    assert stored(conn) == 201
    assert broker.refusals["rate_limited"] == 3


async def test_one_agent_flooding_does_not_slow_another(clock: Clock, brokers: Brokers) -> None:
    broker = brokers(replace(ROOMY, rate=1, burst=3))
    for _ in range(3):
        broker.send("alice", "bob", "flood")
    with pytest.raises(RateLimited):
        broker.send("alice", "bob", "flood")
    for _ in range(3):
        broker.send("bob", "alice", "my own allowance")


async def test_large_bodies_are_limited_by_the_bytes_rate(
    conn: Database, clock: Clock, brokers: Brokers
) -> None:
    broker = brokers(replace(ROOMY, bytes_rate=1 * MIB, bytes_burst=1 * MIB))
    big = "x" * (256 * KIB)
    for _ in range(4):
        broker.send("alice", "bob", big)
    with pytest.raises(RateLimited, match=r"retry in 0\.250 s") as err:
        broker.send("alice", "bob", big)
    assert err.value.retry_after == pytest.approx(0.25)
    with pytest.raises(RateLimited) as small:
        broker.send("alice", "bob", "small")
    assert small.value.retry_after < 0.001  # a few bytes need a moment, not a quarter second
    clock.now += 0.25
    broker.send("alice", "bob", big)
    assert stored(conn) == 5


async def test_a_send_refused_for_another_reason_spends_no_tokens(
    conn: Database, brokers: Brokers
) -> None:
    broker = brokers(replace(ROOMY, rate=1, burst=3, quota=2 * charge(10)))
    for to, body in [("nobody", "hi"), ("bob", ""), ("bob", "x" * (256 * KIB + 1))]:
        with pytest.raises(ClientError) as refused:
            broker.send("alice", to, body)
        assert not isinstance(refused.value, RateLimited)
    broker.send("alice", "bob", "0123456789")
    broker.send("alice", "bob", "0123456789")
    for _ in range(5):
        with pytest.raises(QuotaExceeded):
            broker.send("alice", "bob", "0123456789")
    assert await broker.recv("bob", 0) is not None
    broker.send("alice", "bob", "0123456789")  # the third token was still there
    assert stored(conn) == 3
    assert broker.refusals == {"unknown_recipient": 1, "empty_body": 1, "too_large": 1, "quota": 5}


async def test_a_send_refused_for_its_rate_does_not_postpone_the_next(
    conn: Database, clock: Clock, brokers: Brokers
) -> None:
    broker = brokers(replace(ROOMY, rate=1, burst=1))
    broker.send("alice", "bob", "a")
    clock.now += 0.5
    for _ in range(5):
        with pytest.raises(RateLimited, match=r"retry in 0\.500 s"):
            broker.send("alice", "bob", "too soon")
    clock.now += 0.5
    broker.send("alice", "bob", "b")
    assert stored(conn) == 2


async def test_the_operator_is_never_rate_limited_nor_held_to_a_quota(
    conn: Database, brokers: Brokers
) -> None:
    broker = brokers(SendPolicy(rate=1, burst=1, bytes_rate=1, bytes_burst=1, quota=1))
    for i in range(50):
        broker.send("operator", "alice", f"instruction {i} " + "x" * 1000)
    broker.post_event("alice", "agent_state", {"state": "running"})
    assert stored(conn) == 51
    assert "rate_limited" not in broker.refusals and "quota" not in broker.refusals


# -- the undelivered-bytes quota ------------------------------------------------------


async def test_the_quota_is_reached_with_undelivered_messages_and_stores_nothing_more(
    conn: Database, brokers: Brokers
) -> None:
    body = "y" * 1000
    broker = brokers(replace(ROOMY, quota=3 * charge(1000)))
    for _ in range(3):
        broker.send("alice", "bob", body)
    with pytest.raises(QuotaExceeded, match="waiting to be delivered") as err:
        broker.send("alice", "bob", body)
    assert err.value.code == "quota"
    assert stored(conn) == 3
    assert broker.refusals["quota"] == 1
    assert broker.limits.undelivered("alice") == 3 * (1000 + MESSAGE_OVERHEAD)


async def test_messages_to_the_operator_are_logged_delivered_and_hold_no_quota(
    conn: Database, brokers: Brokers
) -> None:
    # The operator reads the log, never a queue: nothing would ever free a
    # quota held by reports to them.
    broker = brokers(replace(ROOMY, quota=charge(1000)))
    for _ in range(5):
        broker.send("alice", "operator", "y" * 1000)
    assert broker.limits.undelivered("alice") == 0
    assert broker.pending() == {}
    undelivered = conn.execute(
        "SELECT count(*) FROM messages WHERE recipient = 'operator' AND delivered_at IS NULL"
    ).fetchone()[0]
    assert (stored(conn), undelivered) == (5, 0)
    assert [m.body for m in broker.history("operator", 10)] == ["y" * 1000] * 5


async def test_the_quota_is_freed_by_a_plain_recv_and_by_an_ack_but_not_by_a_lease(
    brokers: Brokers,
) -> None:
    broker = brokers(replace(ROOMY, quota=2 * charge(5)))
    broker.send("alice", "bob", "one..")
    broker.send("alice", "bob", "two..")
    with pytest.raises(QuotaExceeded):
        broker.send("alice", "bob", "three")
    assert await broker.recv("bob", 0) is not None  # no lease: delivered at once
    broker.send("alice", "bob", "three")
    holder = object()
    got = await broker.recv("bob", 0, holder=holder)
    assert got is not None and got[1] is not None
    with pytest.raises(QuotaExceeded):
        broker.send("alice", "bob", "four.")  # leased is not delivered yet
    broker.nack("bob", got[1].token)
    again = await broker.recv("bob", 0, holder=holder)
    assert again is not None and again[1] is not None
    broker.ack("bob", again[1].token)
    broker.send("alice", "bob", "four.")
    assert broker.limits.undelivered("alice") == 2 * charge(5)


async def test_the_quota_is_rebuilt_from_the_database_after_a_restart(
    conn: Database, brokers: Brokers
) -> None:
    policy = replace(ROOMY, quota=3 * charge(4))
    first = brokers(policy)
    for body in ("aaaa", "bbbb", "cccc"):
        first.send("alice", "bob", body)
    assert await first.recv("bob", 0) is not None
    first.send("bob", "alice", "from bob")
    first.close()
    restarted = brokers(policy)
    assert restarted.limits.undelivered("alice") == 2 * charge(4)
    assert restarted.limits.undelivered("bob") == charge(len("from bob"))
    restarted.send("alice", "bob", "dddd")
    with pytest.raises(QuotaExceeded):
        restarted.send("alice", "bob", "eeee")


# -- over the sockets -----------------------------------------------------------------


async def test_an_agent_over_its_limits_gets_a_clear_error_code_on_its_socket(
    config: Config,
) -> None:
    limited = replace(config, send_rate=0.001, send_burst=2, undelivered_quota=1000)
    hive = Hive(limited)
    await hive.start()
    try:
        await hive.add_agent("alice", ["bob"])
        await hive.add_agent("bob", None)
        path = hive.socket_path(hive.registry.get("alice"))
        async with await Client.connect(path) as alice:
            await alice.call("send", to="bob", body="x" * 20)
            with pytest.raises(RemoteError) as quota:
                await alice.call("send", to="bob", body="x" * 2000)
            assert quota.value.code == "quota"
            await alice.call("send", to="bob", body="short")
            with pytest.raises(RemoteError) as rate:
                await alice.call("send", to="bob", body="s")
            assert rate.value.code == "rate_limited"
            assert "retry in" in rate.value.message
        async with await Client.connect(hive.config.host_socket) as op:
            status = await op.call("status")
        assert status["refusals"] == {"quota": 1, "rate_limited": 1}
    finally:
        await hive.shutdown(grace=2)


async def test_a_flooding_agent_on_a_real_daemon_stores_what_its_rate_allows_and_no_more(
    daemon: Daemon,
) -> None:
    # The flood as found: one agent sending 256 KiB bodies as fast as it can
    # (4,018 of them in 10 s grew hive.db by 1 GB).
    async with await Client.connect(daemon.host_socket) as op:
        await op.call("agent_add", name="alice", allow_send=["bob"])
        await op.call("agent_add", name="bob")
    body = "x" * (256 * KIB - 16)
    codes: list[str] = []
    began = time.monotonic()
    async with await Client.connect(daemon.run_dir / "agents" / "alice" / "mcp.sock") as alice:
        for _ in range(400):
            try:
                await alice.call("send", to="bob", body=body)
                codes.append("ok")
            except RemoteError as err:
                codes.append(err.code)
    elapsed = time.monotonic() - began
    stored, refused = codes.count("ok"), codes.count("rate_limited")
    assert stored + refused == len(codes)
    policy = SendPolicy()
    allowed = (policy.bytes_burst + policy.bytes_rate * elapsed) / len(body) + 1
    assert 0 < stored <= allowed and refused > 0, (stored, refused, elapsed)
    db = sum(p.stat().st_size for p in daemon.state_dir.glob("hive.db*"))
    assert db < (stored + 8) * 300 * KIB
