"""The meter (core/gateway/meter.py) on a started hive's real broker, bus and store, with a
clock the test moves: states, events, hm1nd told, deliveries held and released."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from hyperhive.client import Client
from hyperhive.core.bus import Subscription
from hyperhive.core.gateway.budget import Budget, Override
from hyperhive.core.gateway.ledger import Ledger
from hyperhive.core.gateway.meter import Meter, utc_day, utc_day_span
from hyperhive.core.gateway.prices import NANO_PER_USD, load_prices
from hyperhive.core.gateway.seams import Usage
from hyperhive.core.hive import Hive
from hyperhive.core.notifier import Notifier
from support.wire import until_status

WAIT = 10.0
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
SONNET = "claude-sonnet-4-5-20250929"
# $3 per million input tokens: 100k input tokens cost $0.30.
TENTH_MILLION = Usage(input_tokens=100_000)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def hm1nd_hive(hive: Hive) -> Hive:
    await hive.add_agent("hm1nd", None)
    await hive.add_agent("alice", None)
    await hive.add_agent("bob", None)
    return hive


def meter_on(hive: Hive, clock: Clock, budgets: dict[str, Budget], hive_budget: Budget) -> Meter:
    meter = Meter(
        Ledger(hive.conn),
        load_prices(None),
        holds=hive.broker,
        teller=Notifier(hive.bus, hive.broker, hive.registry),
        agents=lambda: [a.name for a in hive.registry.all()],
        budgets_of=lambda name: budgets.get(name, Budget()),
        hive_budget=hive_budget,
        clock=clock,
    )
    meter.start()
    return meter


async def next_of(sub: Subscription, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        async for event in sub:
            if event["type"] == kind:
                return event
    raise AssertionError(f"the bus ended before a {kind} event")


def budget_events(hive: Hive) -> list[dict[str, Any]]:
    """The core events hm1nd's inbox holds, oldest first."""
    rows = hive.conn.execute(
        "SELECT body, payload FROM messages WHERE recipient = 'hm1nd' AND kind = 'event'"
        " ORDER BY id"
    ).fetchall()
    return [json.loads(p) for body, p in rows if body == "budget"]


async def test_spend_warns_at_80_percent_pauses_at_100_and_tells_hm1nd(hm1nd_hive: Hive) -> None:
    hive, clock = hm1nd_hive, Clock()
    meter = meter_on(hive, clock, {"alice": Budget.of(1.0)}, Budget())
    sub = hive.bus.subscribe()
    for _ in range(2):
        meter.record("alice", SONNET, TENTH_MILLION)  # $0.30 each
    usage = await next_of(sub, "usage")
    assert usage["agent"] == "alice" and usage["state"] == "ok"
    assert usage["today"]["input_tokens"] == 100_000 and usage["today"]["cost_usd"] == 0.3
    assert meter.refusal("alice") is None and budget_events(hive) == []

    meter.record("alice", SONNET, Usage(input_tokens=66_667))  # $0.800001: just past 80 %
    warned = await next_of(sub, "budget")
    assert warned["agent"] == "alice" and warned["state"] == "warn"
    assert "alice has used 80 % or more of its budget ($0.80 of $1.00 today)" in warned["text"]
    assert [e["state"] for e in budget_events(hive)] == ["warn"]
    assert meter.refusal("alice") is None

    meter.record("alice", SONNET, Usage(input_tokens=66_667))  # $1.000002
    paused = await next_of(sub, "budget")
    assert paused["state"] == "paused"
    assert meter.refusal("alice") == (
        "alice is paused: budget ($1.00 of $1.00 today); "
        "the operator can raise its budget or resume it"
    )
    assert meter.refusal("bob") is None and meter.paused("alice")
    assert [e["state"] for e in budget_events(hive)] == ["warn", "paused"]
    assert budget_events(hive)[-1]["agent"] == "alice"
    assert meter.today("alice").cost_nusd == 2 * 300_000_000 + 2 * 200_001_000
    meter.close()


async def test_a_paused_agents_deliveries_wait_until_the_operator_raises_its_budget(
    hm1nd_hive: Hive,
) -> None:
    hive, clock = hm1nd_hive, Clock()
    meter = meter_on(hive, clock, {"alice": Budget.of(0.5)}, Budget())
    meter.record("alice", SONNET, Usage(input_tokens=200_000))  # $0.60
    assert meter.state("alice") == "paused"
    async with (
        await Client.connect(hive.config.host_socket) as op,
        await Client.connect(hive.socket_path(hive.registry.get("alice"))) as alice,
    ):
        waiting = asyncio.create_task(alice.call("recv", wait=30, lease=True))
        await until_status(hive.config.host_socket, lambda s: s["waiting"].get("alice") == 1)
        await op.call("send", to="alice", body="a new turn")
        await until_status(
            hive.config.host_socket,
            lambda s: s["pending"].get("alice") == 1 and s["waiting"].get("alice") == 1,
        )
        assert not waiting.done()  # held: the queue waits, the message is kept
        assert meter.set_budget("alice", Override(set_usd=True, nusd_per_day=NANO_PER_USD)) == "ok"
        got = await asyncio.wait_for(waiting, WAIT)
        assert got["message"]["body"] == "a new turn"
        await alice.call("ack", lease=got["lease"])
    assert meter.refusal("alice") is None and not meter.paused("alice")
    meter.close()


async def test_a_resume_lifts_a_pause_for_the_rest_of_the_day_only(hm1nd_hive: Hive) -> None:
    hive, clock = hm1nd_hive, Clock()
    meter = meter_on(hive, clock, {"alice": Budget.of(tokens_per_day=1000)}, Budget())
    meter.record("alice", SONNET, Usage(input_tokens=900, output_tokens=200))
    assert meter.state("alice") == "paused" and "alice" in hive.broker.held()
    assert meter.resume("alice") == "warn"
    assert "alice" not in hive.broker.held() and meter.refusal("alice") is None
    meter.record("alice", SONNET, Usage(output_tokens=5000))  # resumed: spends on
    assert meter.refusal("alice") is None
    clock.now += 86400  # the next UTC day starts at zero, and the resume is over
    meter.refresh()
    assert meter.state("alice") == "ok" and meter.today("alice").tokens == 0
    meter.record("alice", SONNET, Usage(output_tokens=1000))
    assert meter.state("alice") == "paused" and meter.refusal("alice") is not None
    meter.close()


def test_a_day_span_holds_every_instant_of_its_utc_day_and_ends_at_the_next() -> None:
    day, start, end = utc_day_span(T0)
    assert (day, start, end) == ("2027-01-15", T0 - 8 * 3600, T0 + 16 * 3600)
    assert utc_day_span(start) == (day, start, end)  # midnight starts its day
    assert utc_day(end - 0.001) == day and utc_day_span(end)[0] == "2027-01-16"
    assert utc_day_span(-1.0) == ("1969-12-31", -86400.0, 0.0)


async def test_a_new_utc_day_lifts_a_budget_pause(hm1nd_hive: Hive) -> None:
    hive, clock = hm1nd_hive, Clock()
    meter = meter_on(hive, clock, {"alice": Budget.of(0.1)}, Budget())
    sub = hive.bus.subscribe()
    meter.record("alice", SONNET, TENTH_MILLION)
    assert (await next_of(sub, "budget"))["state"] == "paused"
    assert "alice" in hive.broker.held()
    clock.now += 16 * 3600  # 2027-01-16 00:00 UTC
    assert meter.refusal("alice") is None  # a request on the new day looks again
    lifted = await next_of(sub, "budget")
    assert lifted["agent"] == "alice" and lifted["state"] == "ok"
    assert "alice" not in hive.broker.held()
    meter.close()


async def test_a_spent_hive_budget_pauses_every_agent(hm1nd_hive: Hive) -> None:
    hive, clock = hm1nd_hive, Clock()
    meter = meter_on(hive, clock, {}, Budget.of(0.5))
    sub = hive.bus.subscribe()
    meter.record("alice", SONNET, TENTH_MILLION)
    meter.record("bob", SONNET, TENTH_MILLION)  # $0.60 in all
    assert meter.state("alice") == "ok" and meter.state(None) == "paused"
    event = await next_of(sub, "budget")  # $0.30 was 60 %: no warning before
    assert event["agent"] is None and event["state"] == "paused"
    refusal = meter.refusal("alice")
    assert refusal is not None and refusal.startswith("the hive is paused: budget ($0.60 of $0.50")
    assert hive.broker.held() == {"alice", "bob", "hm1nd"}
    assert meter.resume(None) == "warn" and hive.broker.held() == frozenset()
    meter.close()


async def test_an_unknown_model_is_priced_as_the_dearest_and_counted(hm1nd_hive: Hive) -> None:
    hive, clock = hm1nd_hive, Clock()
    meter = meter_on(hive, clock, {}, Budget())
    meter.record("alice", "mystery-model", Usage(output_tokens=1000))
    meter.record("alice", None, Usage(output_tokens=1000))
    assert meter.today("alice").cost_nusd == 2 * 1000 * 75_000  # opus 4.1's $75/MTok
    assert meter.ledger.unpriced(meter.day) == 2
    meter.close()


async def test_a_model_no_price_names_is_warned_about_once_not_per_request(
    hm1nd_hive: Hive, caplog: pytest.LogCaptureFixture
) -> None:
    meter = meter_on(hm1nd_hive, Clock(), {}, Budget())
    try:
        with caplog.at_level("WARNING", logger="hyperhive.core.gateway.meter"):
            for _ in range(5):
                meter.record("alice", "claude-unheard-of-9", TENTH_MILLION)
            meter.record("bob", "claude-unheard-of-9", TENTH_MILLION)
            meter.record("alice", "another-unpriced", TENTH_MILLION)
        warned = [r.getMessage() for r in caplog.records if "no price names" in r.getMessage()]
        assert len(warned) == 2
        assert "claude-unheard-of-9" in warned[0] and "another-unpriced" in warned[1]
        assert meter.today("alice").requests == 6  # every request still metered
    finally:
        meter.close()
