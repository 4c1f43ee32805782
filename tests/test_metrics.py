"""``GET /metrics`` on the real dashboard server over a real core: behind the operator
token (a scraper's Bearer), Prometheus text that prometheus_client's own parser reads,
and figures that move by exactly what the test did."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from hyperhive.agent.fake_engine import ScriptedEngine
from hyperhive.client import Client, RemoteError
from hyperhive.config import Config
from hyperhive.core.gateway.seams import Usage
from hyperhive.core.hive import Hive
from hyperhive.settings import LiveSettings, NotifySettings, Settings, WebhookSink
from hyperhive.web.dashboard_app import create_dashboard_app
from support.receiver import Receiver
from support.running import RunningAgent
from support.stub_control import serving
from test_harness import make_settings

TOKEN = "metrics-operator-token-0123456789"
WAIT = 20.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Scraped:
    hive: Hive
    base: str

    async def scrape(self) -> Samples:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=self.base, timeout=WAIT) as http:
            got = await http.get("/metrics", headers=headers)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == CONTENT_TYPE_LATEST
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(got.text)
            for sample in family.samples
        }

    async def call(self, socket: Path, op: str, **args: Any) -> Any:
        async with await Client.connect(socket) as client:
            return await client.call(op, **args)

    async def host(self, op: str, **args: Any) -> Any:
        return await self.call(self.hive.config.host_socket, op, **args)


def at(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextlib.asynccontextmanager
async def scraped_hive(
    config: Config, notify: NotifySettings | None = None
) -> AsyncIterator[Scraped]:
    hive = Hive(config, settings=LiveSettings(Settings(notify=notify or NotifySettings())))
    await hive.start()
    try:
        for name in ("hm1nd", "alice", "bob"):
            await hive.add_agent(name, None)
        app = create_dashboard_app(hive.operator_desk(), token=TOKEN)
        async with serving(app) as server:
            yield Scraped(hive, f"http://127.0.0.1:{server.port}")
    finally:
        await hive.shutdown(grace=2.0)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}, {"Authorization": TOKEN}],
    ids=["no token", "wrong token", "not a bearer"],
)
async def test_metrics_without_the_operator_token_are_refused_with_no_data(
    config: Config, headers: dict[str, str]
) -> None:
    async with scraped_hive(config) as s, httpx.AsyncClient(base_url=s.base) as http:
        got = await http.get("/metrics", headers=headers)
        assert got.status_code == 401
        assert "hyperhive_" not in got.text and got.json()["ok"] is False


async def test_a_scrape_parses_and_names_every_family(config: Config) -> None:
    async with scraped_hive(config) as s:
        samples = await s.scrape()
    names = {name for name, _ in samples}
    for name in (
        "hyperhive_messages_sent_total",
        "hyperhive_messages_delivered_total",
        "hyperhive_dead_letters_total",
        "hyperhive_queue_depth",
        "hyperhive_approvals_pending",
        "hyperhive_questions_pending",
        "hyperhive_agents",
        "hyperhive_stalls",
    ):
        assert name in names, name
    # Every registered agent has its queue depth, and a core without containers counts
    # its agents as external.
    assert at(samples, "hyperhive_queue_depth", agent="bob") == 0
    assert at(samples, "hyperhive_agents", state="external") == 3
    assert at(samples, "hyperhive_approvals_pending", kind="tool_use") == 0


async def test_messages_refusals_and_deliveries_move_the_counters_exactly(config: Config) -> None:
    async with scraped_hive(config) as s:
        before = await s.scrape()
        for body in ("one", "two", "three"):
            await s.host("send", to="bob", body=body)
        with pytest.raises(RemoteError):
            await s.host("send", to="nobody", body="lost")
        bob = s.hive.socket_path(s.hive.registry.get("bob"))
        async with await Client.connect(bob) as me:
            got = await me.call("recv", wait=0, lease=True)
            await me.call("ack", lease=got["lease"])
        after = await s.scrape()

    def moved(name: str, **labels: str) -> float:
        return at(after, name, **labels) - at(before, name, **labels)

    assert moved("hyperhive_messages_sent_total") == 3
    assert moved("hyperhive_messages_delivered_total") == 1
    assert moved("hyperhive_messages_refused_total", reason="unknown_recipient") == 1
    assert moved("hyperhive_queue_depth", agent="bob") == 2
    assert moved("hyperhive_queue_depth", agent="alice") == 0


async def test_approvals_and_questions_pending_move_the_gauges(config: Config) -> None:
    async with scraped_hive(config) as s:
        before = await s.scrape()
        manager = s.hive.config.agent_socket("hm1nd", manager=True)
        asked = await s.call(manager, "request_spawn", name="carol", reason="a helper")
        await s.call(manager, "ask_operator", question="which model?")
        pending = await s.scrape()
        await s.host("deny", id=asked["id"], reason="not now")
        decided = await s.scrape()
    spawn = "hyperhive_approvals_pending"
    assert at(pending, spawn, kind="spawn") - at(before, spawn, kind="spawn") == 1
    assert at(decided, spawn, kind="spawn") == at(before, spawn, kind="spawn")
    asked_q = "hyperhive_questions_pending"
    assert at(pending, asked_q) - at(before, asked_q) == 1


async def test_a_turn_counts_once_for_its_agent(config: Config, short_dir: Path) -> None:
    async with scraped_hive(config) as s:
        before = await s.scrape()
        settings = make_settings(s.hive, short_dir)
        agent = RunningAgent(settings, ScriptedEngine(), {"ANTHROPIC_API_KEY": "x"}, WAIT)
        turns = "hyperhive_turns_total"
        try:
            await s.host("send", to="alice", body="a turn, please")
            end = await agent.next_kind("turn_end", ok=True)
            # The harness reports on its own connection, after the turn: each scrape is a
            # round trip to the core, so this waits on I/O, never on a timer.
            async with asyncio.timeout(WAIT):
                while at(counted := await s.scrape(), turns, agent="alice") == 0:
                    pass
        finally:
            await agent.stop()
        # A repeated end (the harness retried on a fresh connection) counts nothing.
        await s.call(settings.socket, "activity", turn=end.data["turn"], phase="end")
        after = await s.scrape()
    assert at(counted, turns, agent="alice") - at(before, turns, agent="alice") == 1
    assert at(after, turns, agent="alice") == at(counted, turns, agent="alice")
    assert at(after, turns, agent="bob") == 0


async def test_metered_tokens_and_cost_show_per_agent_and_kind(config: Config) -> None:
    async with scraped_hive(config) as s:
        before = await s.scrape()
        used = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_input_tokens=7)
        s.hive.meter.record("alice", "claude-sonnet-4-5", used)
        s.hive.meter.record("alice", "claude-sonnet-4-5", used)
        after = await s.scrape()

    def moved(name: str, **labels: str) -> float:
        return at(after, name, **labels) - at(before, name, **labels)

    tokens = "hyperhive_tokens_total"
    assert moved(tokens, agent="alice", kind="input") == 2_000_000
    assert moved(tokens, agent="alice", kind="output") == 200_000
    assert moved(tokens, agent="alice", kind="cache_read") == 14
    assert moved(tokens, agent="bob", kind="input") == 0
    # $3 per million in and $15 per million out, twice, and a cent's sliver for the cache.
    assert moved("hyperhive_cost_usd_total", agent="alice") == pytest.approx(9.0, abs=1e-4)


async def test_agent_activity_reports_are_checked_before_anything_counts(config: Config) -> None:
    async with scraped_hive(config) as s:
        alice = s.hive.socket_path(s.hive.registry.get("alice"))
        for bad in (
            {"turn": 1, "phase": "middle"},
            {"turn": -1, "phase": "end"},
            {"turn": "1", "phase": "end"},
            {"turn": 1, "phase": "end", "agent": "bob"},
            {"phase": "end"},
        ):
            with pytest.raises(RemoteError) as refused:
                await s.call(alice, "activity", **bad)
            assert refused.value.code == "bad_request", bad
        with pytest.raises(RemoteError) as forbidden:
            await s.host("activity", turn=1, phase="end")
        assert forbidden.value.code in ("forbidden", "unknown_op")
        samples = await s.scrape()
    assert at(samples, "hyperhive_turns_total", agent="alice") == 0


def sent(samples: Samples, outcome: str) -> float:
    return at(samples, "hyperhive_notifications_total", sink="hook", outcome=outcome)


def moved_both(before: Samples, after: Samples) -> bool:
    return all(sent(after, o) > sent(before, o) for o in ("delivered", "failed"))


async def test_notification_deliveries_and_failures_count_per_sink(config: Config) -> None:
    receiver = Receiver()
    await receiver.start()
    sinks = (WebhookSink("hook", receiver.url("/hook"), events=frozenset({"question"})),)
    notify = NotifySettings(sinks=sinks, backoff_first=0.05, backoff_max=0.1)
    try:
        async with scraped_hive(config, notify) as s:
            manager = s.hive.config.agent_socket("hm1nd", manager=True)
            before = await s.scrape()
            await s.call(manager, "ask_operator", question="first?")
            await receiver.next(WAIT)
            receiver.mode = "fail"
            await s.call(manager, "ask_operator", question="second?")
            await receiver.next(WAIT)  # answered 500: a failed try, and a retry to come
            async with asyncio.timeout(WAIT):
                # Each pass waits for the dispatcher to record an outcome, not for a timer.
                while not moved_both(before, after := await s.scrape()):
                    await s.hive.notifications.changed()
    finally:
        await receiver.stop()
    assert sent(after, "delivered") - sent(before, "delivered") == 1
    assert sent(after, "failed") - sent(before, "failed") >= 1
    assert sent(after, "dropped") == sent(before, "dropped")
    assert at(after, "hyperhive_notifications_pending", sink="hook") == 1
