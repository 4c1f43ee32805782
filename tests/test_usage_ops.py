"""The spend and budget ops (core/ops/usage.py) on a real started hive's host.sock: what the
operator reads and sets, bad input refused with nothing changed, and a pause kept across
a restart of the core."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperhive.client import Client, RemoteError
from hyperhive.config import Config
from hyperhive.core.gateway.seams import Usage
from hyperhive.core.hive import Hive
from hyperhive.errors import ConfigError
from support.wire import until_status

SONNET = "claude-sonnet-4-5-20250929"
WAIT = 10.0


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


async def host(hive: Hive) -> Client:
    return await Client.connect(hive.config.host_socket)


async def test_usage_reports_each_agents_day_today_and_budget_state(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    await hive.add_agent("bob", None)
    hive.meter.record("alice", SONNET, Usage(1000, 200, 30, 4000))
    hive.meter.record("alice", SONNET, Usage(10, 20, 0, 0))
    hive.meter.record("bob", "claude-haiku-4-5", Usage(5, 5, 0, 0))
    async with await host(hive) as op:
        got = await op.call("usage")
        alice_only = await op.call("usage", agent="alice", since=today())
    alice_today = {
        "requests": 2,
        "input_tokens": 1010,
        "output_tokens": 220,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 4000,
        "tokens": 5260,
        # 1010 at $3, 220 at $15, 30 at $3.75 and 4000 at $0.30 per million tokens
        "cost_usd": (1010 * 3000 + 220 * 15000 + 30 * 3750 + 4000 * 300) / 1e9,
    }
    assert got["days"] == [
        {"agent": "alice", "day": today(), **alice_today},
        {
            "agent": "bob",
            "day": today(),
            **{
                "requests": 1,
                "input_tokens": 5,
                "output_tokens": 5,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "tokens": 10,
                "cost_usd": (5 * 1000 + 5 * 5000) / 1e9,
            },
        },
    ]
    assert got["agents"]["alice"] == {
        "today": alice_today,
        "budget": {"usd_per_day": None, "tokens_per_day": None},
        "state": "ok",
    }
    assert got["hive"]["today"]["requests"] == 3 and got["hive"]["state"] == "ok"
    assert alice_only["days"] == [{"agent": "alice", "day": today(), **alice_today}]
    assert list(alice_only["agents"]) == ["alice"]


async def test_usage_series_buckets_spend_over_time(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    hive.meter.record("alice", SONNET, Usage(output_tokens=1000))
    async with await host(hive) as op:
        got = await op.call("usage_series", bucket=60)
        none = await op.call(
            "usage_series", agent="alice", since=datetime.now(UTC).timestamp() + 120
        )
    assert got["bucket"] == 60
    [[start, cost, tokens]] = got["series"]["alice"]
    assert start % 60 == 0 and cost == 0.015 and tokens == 1000
    assert none == {"bucket": 300, "series": {}}


async def test_the_operator_sets_budgets_and_the_state_follows(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    hive.meter.record("alice", SONNET, Usage(input_tokens=300_000))  # $0.90
    async with await host(hive) as op:
        set_one = await op.call("budget_set", agent="alice", usd_per_day=1.0)
        assert set_one == {
            "agent": "alice",
            "budget": {"usd_per_day": 1.0, "tokens_per_day": None},
            "state": "warn",
        }
        paused = await op.call("budget_set", agent="alice", tokens_per_day=300_000)
        assert paused["state"] == "paused"
        assert paused["budget"] == {"usd_per_day": 1.0, "tokens_per_day": 300_000}
        [row] = await op.call("agents", name="alice")
        assert row["paused"] == "budget"
        lifted = await op.call("budget_set", agent="alice", tokens_per_day=None)
        assert lifted["budget"] == {"usd_per_day": 1.0, "tokens_per_day": None}
        assert lifted["state"] == "warn"
        [row] = await op.call("agents", name="alice")
        assert row["paused"] is None
        hive_wide = await op.call("budget_set", usd_per_day=0.5)
        assert hive_wide == {
            "agent": None,
            "budget": {"usd_per_day": 0.5, "tokens_per_day": None},
            "state": "paused",
        }
        [row] = await op.call("agents", name="alice")
        assert row["paused"] == "budget"
        resumed = await op.call("budget_resume")
        assert resumed == {"agent": None, "state": "warn"}
        usage = await op.call("usage")
        assert usage["hive"]["state"] == "warn" and usage["agents"]["alice"]["state"] == "warn"


async def test_budget_resume_lets_a_paused_agent_take_turns_again(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    hive.meter.record("alice", SONNET, Usage(input_tokens=300_000))
    async with (
        await host(hive) as op,
        await Client.connect(hive.socket_path(hive.registry.get("alice"))) as alice,
    ):
        await op.call("budget_set", agent="alice", usd_per_day=0.5)
        await op.call("send", to="alice", body="next turn")
        waiting = asyncio.create_task(alice.call("recv", wait=30))
        await until_status(hive.config.host_socket, lambda s: s["waiting"].get("alice") == 1)
        assert not waiting.done()
        assert await op.call("budget_resume", agent="alice") == {"agent": "alice", "state": "warn"}
        got = await asyncio.wait_for(waiting, WAIT)
    assert got["message"]["body"] == "next turn"


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("usage", {"agent": "nobody"}, "unknown_agent"),
    ("usage", {"agent": 5}, "bad_request"),
    ("usage", {"since": "yesterday"}, "bad_request"),
    ("usage", {"since": "2027-02-30"}, "bad_request"),
    ("usage", {"since": 20270101}, "bad_request"),
    ("usage", {"limit": 3}, "bad_request"),
    ("usage_series", {"agent": "nobody"}, "unknown_agent"),
    ("usage_series", {"bucket": 10}, "bad_request"),
    ("usage_series", {"bucket": 90000}, "bad_request"),
    ("usage_series", {"bucket": "60"}, "bad_request"),
    ("usage_series", {"since": "today"}, "bad_request"),
    ("usage_series", {"since": -5}, "bad_request"),
    ("budget_set", {"agent": "nobody", "usd_per_day": 1}, "unknown_agent"),
    ("budget_set", {"agent": "alice"}, "bad_request"),
    ("budget_set", {"agent": "alice", "usd_per_day": -1}, "bad_request"),
    ("budget_set", {"agent": "alice", "usd_per_day": 0}, "bad_request"),
    ("budget_set", {"agent": "alice", "usd_per_day": "5"}, "bad_request"),
    ("budget_set", {"agent": "alice", "usd_per_day": True}, "bad_request"),
    ("budget_set", {"agent": "alice", "usd_per_day": 1e300}, "bad_request"),
    ("budget_set", {"agent": "alice", "tokens_per_day": 1.5}, "bad_request"),
    ("budget_set", {"agent": "alice", "tokens_per_day": -10}, "bad_request"),
    ("budget_set", {"agent": "alice", "tokens_per_day": [1]}, "bad_request"),
    ("budget_set", {"agent": "alice", "usd_per_day": 2, "tokens_per_day": 0}, "bad_request"),
    ("budget_set", {"agent": "alice", "usd_per_day": 2, "extra": 1}, "bad_request"),
    ("budget_resume", {"agent": "nobody"}, "unknown_agent"),
    ("budget_resume", {"agent": ["alice"]}, "bad_request"),
    ("budget_resume", {"name": "alice"}, "bad_request"),
]


@pytest.mark.parametrize(("op", "args", "code"), BAD)
async def test_bad_input_to_a_spend_op_is_a_clear_error_and_changes_nothing(
    hive: Hive, op: str, args: dict[str, Any], code: str
) -> None:
    await hive.add_agent("alice", None)
    hive.meter.record("alice", SONNET, Usage(input_tokens=10))
    async with await host(hive) as c:
        before = await c.call("usage")
        with pytest.raises(RemoteError) as err:
            await c.call(op, **args)
        after = await c.call("usage")
    assert err.value.code == code and err.value.message
    assert after == before
    assert hive.conn.execute("SELECT count(*) FROM budget_overrides").fetchone()[0] == 0
    assert hive.conn.execute("SELECT count(*) FROM budget_log").fetchone()[0] == 0


async def test_agents_may_not_read_or_set_budgets(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with await Client.connect(hive.socket_path(hive.registry.get("alice"))) as alice:
        for op in ("usage", "usage_series", "budget_set", "budget_resume"):
            with pytest.raises(RemoteError) as err:
                await alice.call(op, usd_per_day=100)
            assert err.value.code == "forbidden"


async def test_a_pause_survives_a_restart_of_the_core(config: Config) -> None:
    first = Hive(config)
    await first.start()
    await first.add_agent("alice", None)
    first.meter.record("alice", SONNET, Usage(input_tokens=400_000))  # $1.20
    async with await host(first) as op:
        assert (await op.call("budget_set", agent="alice", usd_per_day=1.0))["state"] == "paused"
        await op.call("send", to="alice", body="after the restart")
    await first.shutdown(grace=2.0)

    second = Hive(config)
    await second.start()
    try:
        assert second.broker.held() == {"alice"}
        refusal = second.meter.refusal("alice")
        assert refusal is not None and "alice is paused: budget ($1.20 of $1.00 today)" in refusal
        async with (
            await host(second) as op,
            await Client.connect(second.socket_path(second.registry.get("alice"))) as alice,
        ):
            [row] = await op.call("agents", name="alice")
            assert row["paused"] == "budget"
            waiting = asyncio.create_task(alice.call("recv", wait=30))
            await until_status(config.host_socket, lambda s: s["waiting"].get("alice") == 1)
            assert not waiting.done()
            await op.call("budget_resume", agent="alice")
            got = await asyncio.wait_for(waiting, WAIT)
            assert got["message"]["body"] == "after the restart"
    finally:
        await second.shutdown(grace=2.0)

    third = Hive(config)  # resumed for today: still resumed after another restart
    await third.start()
    try:
        assert third.broker.held() == frozenset() and third.meter.refusal("alice") is None
    finally:
        await third.shutdown(grace=2.0)


async def test_a_bad_prices_toml_stops_the_start_with_a_clear_error(config: Config) -> None:
    config.state_dir.mkdir(parents=True)
    (config.state_dir / "prices.toml").write_text("[models.claude-x]\ninput = -3\n")
    hive = Hive(config)
    with pytest.raises(ConfigError) as err:
        await hive.start()
    assert "prices.toml: models.claude-x" in err.value.message
    await hive.shutdown(grace=1.0)


async def test_usage_defaults_to_the_last_seven_days(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    old = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")
    recent = (datetime.now(UTC) - timedelta(days=6)).strftime("%Y-%m-%d")
    for day in (old, recent):
        hive.meter.ledger.add("alice", day, 0.0, Usage(1), 1, unpriced=False)
    async with await host(hive) as op:
        got = await op.call("usage")
        since = await op.call("usage", since=old)
    assert [d["day"] for d in got["days"]] == [recent]
    assert [d["day"] for d in since["days"]] == [old, recent]
