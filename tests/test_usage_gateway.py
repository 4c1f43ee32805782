"""Metering end to end in a started hive: requests through an agent's real api.sock to
FakeAnthropic, the ``usage`` op's figures equal to what the fake billed, exactly, and a
spent budget answered with 402 ``billing_error`` until the operator raises it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.gateway.prices import SHIPPED
from hyperhive.core.gateway.seams import Usage
from hyperhive.core.hive import Hive
from support.fake_anthropic import FakeAnthropic, RecordedRequest, Reply, reply_text
from support.gateway import api_socket, client, error_of, message

SONNET = "claude-sonnet-4-5-20250929"
BILLED = [
    {"input_tokens": 1200, "output_tokens": 340, "cache_creation_input_tokens": 5000},
    {
        "input_tokens": 15,
        "output_tokens": 99,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 5000,
    },
    {"input_tokens": 7, "output_tokens": 1, "cache_read_input_tokens": 6200},
    {"input_tokens": 30_000, "output_tokens": 2000, "cache_creation_input_tokens": 10},
]


class Billing:
    """Every request, streamed or not, gets the next of ``BILLED`` as its usage."""

    def __init__(self) -> None:
        self.left = list(BILLED)

    def __call__(self, request: RecordedRequest) -> Reply:
        return reply_text("answer", usage=self.left.pop(0))


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(Billing()) as fake:
        yield fake


@pytest.fixture
async def metered(config: Config, api: FakeAnthropic) -> AsyncIterator[Hive]:
    hive = Hive(config, env=api.env())
    await hive.start()
    await hive.add_agent("alice", None)
    try:
        yield hive
    finally:
        await hive.shutdown(grace=2.0)


def total(billed: list[dict[str, int]]) -> Usage:
    found = Usage()
    for u in billed:
        found = found + Usage(**u)
    return found


async def test_spend_equals_what_the_upstream_billed_streamed_or_not(
    metered: Hive, api: FakeAnthropic
) -> None:
    async with client(api_socket(metered, "alice")) as http:
        for i in range(len(BILLED)):
            body = {**message(stream=i % 2 == 0), "model": SONNET}
            answer = await http.post("/v1/messages", json=body)
            assert answer.status_code == 200, answer.text
    async with await Client.connect(metered.config.host_socket) as op:
        got = await op.call("usage", agent="alice")
    today = got["agents"]["alice"]["today"]
    used = total(api.served_usage)
    assert api.served_usage == [dict(u) for u in BILLED]
    assert (
        today["input_tokens"],
        today["output_tokens"],
        today["cache_creation_input_tokens"],
        today["cache_read_input_tokens"],
        today["requests"],
    ) == (
        used.input_tokens,
        used.output_tokens,
        used.cache_creation_input_tokens,
        used.cache_read_input_tokens,
        len(BILLED),
    )
    assert metered.meter.today("alice").cost_nusd == SHIPPED["claude-sonnet-4-5"].cost(used)
    assert got["hive"]["today"] == today


async def test_a_spent_budget_is_answered_with_402_until_the_operator_raises_it(
    metered: Hive, api: FakeAnthropic
) -> None:
    async with await Client.connect(metered.config.host_socket) as op:
        await op.call("budget_set", agent="alice", tokens_per_day=6000)
        async with client(api_socket(metered, "alice")) as http:
            first = await http.post("/v1/messages", json={**message(), "model": SONNET})
            assert first.status_code == 200  # 6540 tokens: over the budget now
            refused = await http.post("/v1/messages", json={**message(), "model": SONNET})
            assert refused.status_code == 402
            error = error_of(refused.content)
            assert error["type"] == "billing_error"
            assert error["message"] == (
                "hyperhive: alice is paused: budget (6,540 of 6,000 tokens today); "
                "the operator can raise its budget or resume it"
            )
            assert len(api.served_usage) == 1  # nothing went out
            [row] = await op.call("agents", name="alice")
            assert row["paused"] == "budget"
            await op.call("budget_set", agent="alice", tokens_per_day=1_000_000)
            again = await http.post("/v1/messages", json={**message(), "model": SONNET})
            assert again.status_code == 200
    assert len(api.served_usage) == 2
