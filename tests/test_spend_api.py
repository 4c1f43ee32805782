"""The spend views' pure parts (the budget form, the rows, the events a page may see), then
the dashboard's and the agent page's spend endpoints against real uvicorn and an in-process
core whose real meter records usage: the mapping of the ops, and bad fields refused with
nothing changed."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hyperhive.config import Config
from hyperhive.core.gateway.seams import Usage
from hyperhive.errors import BadRequest
from hyperhive.web.security import CSRF_HEADER
from hyperhive.web.spend import budget_args, concerns, spend_event, spend_rows, spent_fraction
from support.dashboard import Swarm, live_swarm, operator_client

WAIT = 30.0
SONNET = "claude-sonnet-4-5"
TURN = Usage(input_tokens=10, output_tokens=5, cache_read_input_tokens=100)
TURN_USD = (10 * 3 + 5 * 15 + 100 * 0.30) / 1e6  # sonnet 4.5's list prices per token


# -- the budget form, pure ---------------------------------------------------------------


def test_typed_budgets_become_numbers_and_a_blank_field_leaves_that_limit_alone() -> None:
    assert budget_args({"usd_per_day": "5"}) == {"usd_per_day": 5.0}
    assert budget_args({"usd_per_day": " $2.50 ", "tokens_per_day": ""}) == {"usd_per_day": 2.5}
    assert budget_args({"tokens_per_day": "1,000,000"}) == {"tokens_per_day": 1_000_000}
    assert budget_args({"usd_per_day": 0.0003, "tokens_per_day": 200_000.0}) == {
        "usd_per_day": 0.0003,
        "tokens_per_day": 200_000,
    }


def test_none_typed_in_a_budget_box_or_a_json_null_lifts_that_limit() -> None:
    assert budget_args({"usd_per_day": "none"}) == {"usd_per_day": None}
    assert budget_args({"usd_per_day": " No Limit ", "tokens_per_day": "5"}) == {
        "usd_per_day": None,
        "tokens_per_day": 5,
    }
    assert budget_args({"tokens_per_day": None}) == {"tokens_per_day": None}
    assert budget_args({"tokens_per_day": "off", "usd_per_day": ""}) == {"tokens_per_day": None}


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"usd_per_day": "-5"}, "usd_per_day must be dollars"),
        ({"usd_per_day": -5}, "usd_per_day must be above 0"),
        ({"usd_per_day": "0"}, "usd_per_day must be above 0"),
        ({"usd_per_day": "abc"}, "usd_per_day must be dollars, like 5 or 2.50 (got 'abc')"),
        ({"usd_per_day": "1e3"}, "usd_per_day must be dollars"),
        ({"usd_per_day": math.nan}, "usd_per_day must be dollars"),
        ({"usd_per_day": math.inf}, "usd_per_day must be dollars"),
        ({"usd_per_day": "5000000"}, "usd_per_day must be at most 1,000,000"),
        ({"usd_per_day": "9" * 40}, "usd_per_day must be dollars"),
        ({"usd_per_day": True}, "usd_per_day must be dollars"),
        ({"usd_per_day": [5]}, "usd_per_day must be dollars"),
        ({"tokens_per_day": "2.5"}, "tokens_per_day must be a whole number of tokens"),
        ({"tokens_per_day": 2.5}, "tokens_per_day must be a whole number of tokens"),
        ({"tokens_per_day": "10000000000000"}, "tokens_per_day must be at most"),
        ({"usd_per_day": "", "tokens_per_day": " "}, "give a budget"),
        ({}, "give a budget"),
        ({"usd_per_day": "5", "usd": "5"}, "unknown field(s): usd"),
    ],
)
def test_a_bad_budget_field_is_refused_with_what_was_wrong(
    fields: dict[str, Any], says: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        budget_args(fields)
    assert says in refused.value.message


def test_rows_carry_each_agents_share_of_its_budget_the_larger_of_money_and_tokens() -> None:
    usage = {
        "agents": {
            "zed": {"today": {"cost_usd": 0.5, "tokens": 10}, "budget": {}, "state": "ok"},
            "amy": {
                "today": {"cost_usd": 0.5, "tokens": 900},
                "budget": {"usd_per_day": 1.0, "tokens_per_day": 1000},
                "state": "warn",
            },
        },
        "hive": {"today": {"cost_usd": 1.0, "tokens": 910}, "budget": {"usd_per_day": 4.0}},
    }
    shown = spend_rows(usage)
    assert [r["agent"] for r in shown["agents"]] == ["amy", "zed"]
    assert shown["agents"][0]["fraction"] == 0.9 and shown["agents"][0]["state"] == "warn"
    assert shown["agents"][1]["fraction"] is None
    assert shown["hive"]["fraction"] == 0.25
    assert spent_fraction({"cost_usd": 2.0}, {"usd_per_day": 1.0}) == 2.0


def test_a_metering_event_reaches_a_page_with_only_its_known_fields() -> None:
    event = {
        "type": "usage",
        "agent": "amy",
        "today": {"cost_usd": 0.1, "tokens": 5, "api_key": "sk-ant-secret", "requests": True},
        "state": "warn",
        "credential": "sk-ant-secret",
        "seq": 7,
    }
    shown = spend_event(event)
    assert shown == {
        "type": "usage",
        "agent": "amy",
        "seq": 7,
        "state": "warn",
        "today": {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "tokens": 5,
            "cost_usd": 0.1,
        },
    }
    budget = spend_event({"type": "budget", "agent": None, "state": "??", "text": "x" * 900})
    assert budget["state"] == "ok" and len(budget["text"]) == 500 and "today" not in budget
    assert concerns({"type": "usage", "agent": "amy"}, "amy")
    assert not concerns({"type": "usage", "agent": "bob"}, "amy")
    assert concerns({"type": "budget", "agent": None}, "amy")
    assert not concerns({"type": "message", "agent": "amy"}, "amy")


# -- the endpoints, against a real core ---------------------------------------------------


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        await running.hive.add_agent("amy", None)
        yield running


@pytest.fixture
async def http(swarm: Swarm) -> AsyncIterator[httpx.AsyncClient]:
    async with operator_client(swarm) as client:
        yield client


async def post(http: httpx.AsyncClient, swarm: Swarm, path: str, **fields: Any) -> httpx.Response:
    return await http.post(path, json=fields, headers={CSRF_HEADER: swarm.csrf})


async def amy_row(http: httpx.AsyncClient) -> dict[str, Any]:
    rows = (await http.get("/api/usage")).json()["agents"]
    found: dict[str, Any] = next(r for r in rows if r["agent"] == "amy")
    return found


async def test_the_spend_view_shows_what_the_meter_recorded_per_agent_and_for_the_hive(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    for _ in range(3):
        swarm.hive.meter.record("amy", SONNET, TURN)
    shown = (await http.get("/api/usage")).json()
    assert {r["agent"] for r in shown["agents"]} == {"amy", "hm1nd"}
    amy = next(r for r in shown["agents"] if r["agent"] == "amy")
    assert amy["today"]["requests"] == 3 and amy["today"]["input_tokens"] == 30
    assert amy["today"]["cache_read_input_tokens"] == 300 and amy["today"]["tokens"] == 345
    assert amy["today"]["cost_usd"] == pytest.approx(3 * TURN_USD)
    assert amy["state"] == "ok" and amy["fraction"] is None
    assert shown["hive"]["today"]["requests"] == 3 and shown["hive"]["state"] == "ok"
    series = (await http.get("/api/usage/series", params={"bucket": 60})).json()
    assert series["bucket"] == 60 and len(series["series"]["amy"]) == 1
    _, cost, tokens = series["series"]["amy"][0]
    assert cost == pytest.approx(3 * TURN_USD) and tokens == 345
    page = (await http.get("/agents/amy/api/spend")).json()
    assert page["agent"] == "amy" and page["today"] == amy["today"] and page["state"] == "ok"
    assert page["hive"]["today"]["requests"] == 3


async def test_bad_series_parameters_and_unknown_agents_are_refused(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    for params in ({"bucket": "10"}, {"bucket": "x"}, {"since": "-1"}):
        answer = await http.get("/api/usage/series", params=params)
        assert answer.status_code == 400, params
    assert (await http.get("/agents/nobody/api/spend")).status_code == 404
    assert (await http.get("/agents/nobody/api/spend/events")).status_code == 404
    answer = await post(http, swarm, "/api/agents/nobody/budget", usd_per_day="5")
    assert answer.status_code == 400 and "nobody" in answer.json()["message"]


async def test_raising_an_agents_budget_from_the_dashboard_and_from_its_page(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    answer = await post(http, swarm, "/api/agents/amy/budget", usd_per_day="2.50")
    assert answer.status_code == 200
    assert answer.json()["message"] == "amy: budget $2.50/day → ok"
    assert (await amy_row(http))["budget"] == {"usd_per_day": 2.5, "tokens_per_day": None}
    answer = await post(http, swarm, "/agents/amy/api/budget", tokens_per_day="200000")
    assert answer.json()["message"] == "amy: budget $2.50/day · 200,000 tokens/day → ok"
    answer = await post(http, swarm, "/api/budget", usd_per_day=40)
    assert answer.json()["message"] == "the hive: budget $40.00/day → ok"
    shown = (await http.get("/api/usage")).json()
    assert shown["hive"]["budget"]["usd_per_day"] == 40.0
    assert (await http.get("/agents/amy/api/spend")).json()["budget"]["tokens_per_day"] == 200_000
    answer = await post(http, swarm, "/agents/amy/api/budget", usd_per_day="none")
    assert answer.json()["message"] == "amy: budget 200,000 tokens/day → ok"
    answer = await post(http, swarm, "/api/agents/amy/budget", tokens_per_day="none")
    assert answer.json()["message"] == "amy: budget no limit → ok"
    assert (await amy_row(http))["budget"] == {"usd_per_day": None, "tokens_per_day": None}
    answer = await post(http, swarm, "/api/budget", usd_per_day="unlimited")
    assert (await http.get("/api/usage")).json()["hive"]["budget"]["usd_per_day"] is None


@pytest.mark.parametrize(
    "fields",
    [
        {"usd_per_day": "-1"},
        {"usd_per_day": "five"},
        {"usd_per_day": "99999999"},
        {"tokens_per_day": "1.5"},
        {"usd_per_day": ""},
        {"limit": "5"},
    ],
)
async def test_a_bad_budget_field_changes_nothing_on_either_page(
    swarm: Swarm, http: httpx.AsyncClient, fields: dict[str, Any]
) -> None:
    await post(http, swarm, "/api/agents/amy/budget", usd_per_day="1")
    for path in ("/api/agents/amy/budget", "/agents/amy/api/budget", "/api/budget"):
        answer = await post(http, swarm, path, **fields)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["ok"] is False and answer.json()["message"]
    assert (await amy_row(http))["budget"]["usd_per_day"] == 1.0
    assert (await http.get("/api/usage")).json()["hive"]["budget"]["usd_per_day"] is None


async def test_budget_posts_without_the_csrf_token_are_refused_and_change_nothing(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    for path in ("/api/agents/amy/budget", "/agents/amy/api/budget", "/api/budget"):
        answer = await http.post(path, json={"usd_per_day": "3"})
        assert answer.status_code == 403, path
    for path in ("/api/agents/amy/resume", "/agents/amy/api/resume", "/api/resume"):
        assert (await http.post(path, json={})).status_code == 403, path
    assert (await amy_row(http))["budget"]["usd_per_day"] is None


async def test_a_spent_agent_is_paused_and_resuming_it_lets_it_through_for_today(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    await post(http, swarm, "/api/agents/amy/budget", usd_per_day="0.00016")
    swarm.hive.meter.record("amy", SONNET, TURN)  # $0.000135: 84 %
    assert (await amy_row(http))["state"] == "warn"
    swarm.hive.meter.record("amy", SONNET, TURN)
    assert (await amy_row(http))["state"] == "paused"
    listed = {a["name"]: a for a in (await http.get("/api/agents")).json()["agents"]}
    assert listed["amy"]["paused"] == "budget" and listed["hm1nd"]["paused"] is None
    assert swarm.hive.meter.refusal("amy") is not None
    answer = await post(http, swarm, "/agents/amy/api/resume")
    assert answer.status_code == 200 and answer.json()["message"] == "amy: resumed for today → warn"
    assert swarm.hive.meter.refusal("amy") is None
    assert (await http.get("/agents/amy/api/spend")).json()["state"] == "warn"


async def frames(stream: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE frame of ``stream``."""
    name, data = "message", ""
    async for line in stream.aiter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif line == "" and data:
            yield name, json.loads(data)
            name, data = "message", ""


async def next_spend(found: AsyncIterator[tuple[str, dict[str, Any]]], kind: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        async for _, data in found:
            if data.get("type") == kind:
                return data
    raise AssertionError(f"the stream ended before a {kind} event")


async def test_both_feeds_carry_usage_events_with_no_field_beyond_the_pages_own(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    bus = swarm.hive.operator_desk().bus
    async with (
        http.stream("GET", "/events") as dashboard,
        http.stream("GET", "/agents/amy/api/spend/events") as page,
    ):
        dash_frames, page_frames = frames(dashboard), frames(page)
        async with asyncio.timeout(WAIT):
            assert (await anext(dash_frames))[0] == "hello"
            assert (await anext(page_frames))[0] == "hello"
        # Another agent's usage never reaches amy's page; a stray field never a browser.
        bus.publish({"type": "usage", "agent": "hm1nd", "today": {}, "state": "ok"})
        bus.publish({"type": "usage", "agent": "amy", "today": {}, "state": "ok", "key": "sk-x"})
        swarm.hive.meter.record("amy", SONNET, TURN)
        mine = await next_spend(page_frames, "usage")
        assert mine["agent"] == "amy" and "key" not in mine
        recorded = await next_spend(page_frames, "usage")
        assert recorded["today"]["requests"] == 1
        assert recorded["today"]["cost_usd"] == pytest.approx(TURN_USD)
        seen = [await next_spend(dash_frames, "usage") for _ in range(3)]
        assert [s["agent"] for s in seen] == ["hm1nd", "amy", "amy"]
        assert all("key" not in s for s in seen) and seen[2]["today"]["requests"] == 1
