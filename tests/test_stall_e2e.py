"""Stall detection end to end: a real harness whose fake engine hangs, under a real core
with tiny thresholds, reports its turn over its socket; the core raises ``stall`` on the
bus, the dashboard's API shows it on the agent's row (and on a stalled approval's card),
and it clears when the turn ends."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hyperhive.agent.fake_engine import Hang, ScriptedEngine, Step
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.settings import LiveSettings, NotifySettings, Settings, StallSettings, WebhookSink
from hyperhive.web.dashboard_app import create_dashboard_app
from support.bus import BusWatcher
from support.receiver import Receiver
from support.running import RunningAgent
from support.stub_control import serving
from test_harness import make_settings

TOKEN = "stall-operator-token-0123456789"
WAIT = 20.0
THINKING = 0.5


@dataclass
class Stalling:
    hive: Hive
    http: httpx.AsyncClient

    async def host(self, op: str, **args: Any) -> Any:
        async with await Client.connect(self.hive.config.host_socket) as client:
            return await client.call(op, **args)


@contextlib.asynccontextmanager
async def stalling_hive(
    config: Config, stall: StallSettings, notify: NotifySettings | None = None
) -> AsyncIterator[Stalling]:
    settings = Settings(stall=stall, notify=notify or NotifySettings())
    hive = Hive(config, settings=LiveSettings(settings))
    await hive.start()
    try:
        app = create_dashboard_app(hive.operator_desk(), token=TOKEN)
        async with serving(app) as server:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            base = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=WAIT) as http:
                yield Stalling(hive, http)
    finally:
        await hive.shutdown(grace=2.0)


def is_stall(kind: str, what: str, agent: str) -> Any:
    return lambda e: e.get("type") == kind and e.get("what") == what and e.get("agent") == agent


async def row_of(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    got = await http.get("/api/agents")
    assert got.status_code == 200, got.text
    rows: list[dict[str, Any]] = got.json()["agents"]
    return next(r for r in rows if r["name"] == name)


@pytest.fixture
def hanging() -> tuple[Hang, ScriptedEngine]:
    hang = Hang()

    def script(prompt: str) -> Sequence[Step]:
        return [hang]

    return hang, ScriptedEngine(script)


async def test_a_hanging_turn_raises_a_stall_that_the_dashboard_shows_and_its_end_clears(
    config: Config, short_dir: Path, hanging: tuple[Hang, ScriptedEngine]
) -> None:
    hang, engine = hanging
    stall = StallSettings(thinking=THINKING, approval=None, lease=None)
    async with stalling_hive(config, stall) as s:
        await s.hive.add_agent("alice", None)
        watcher = BusWatcher(s.hive.bus)
        agent = RunningAgent(
            make_settings(s.hive, short_dir), engine, {"ANTHROPIC_API_KEY": "sk-x"}, WAIT
        )
        try:
            await s.host("send", to="alice", body="think hard")
            raised = await watcher.next(is_stall("stall", "thinking", "alice"))
            assert hang.started.is_set()
            assert raised["seconds"] >= THINKING and raised["id"] is None
            assert "alice" in raised["text"]
            # Reported once however many ticks pass while it hangs on.
            assert [e for e in watcher.seen if e.get("type") == "stall"] == [raised]
            row = await row_of(s.http, "alice")
            assert [x["what"] for x in row["stalled"]] == ["thinking"]
            [current] = await s.host("stalls")
            assert (current["what"], current["agent"]) == ("thinking", "alice")
            assert current["since"] == raised["since"] and current["seconds"] >= THINKING
            cancelled = await agent.harness.cancel()
            assert cancelled.ok
            cleared = await watcher.next(is_stall("stall_cleared", "thinking", "alice"))
            assert cleared["since"] == raised["since"]
            assert (await row_of(s.http, "alice"))["stalled"] == []
            assert await s.host("stalls") == []
        finally:
            await agent.stop()


async def test_a_quiet_agent_raises_no_stall(config: Config, short_dir: Path) -> None:
    stall = StallSettings(thinking=THINKING, approval=None, lease=None)
    async with stalling_hive(config, stall) as s:
        await s.hive.add_agent("alice", None)
        watcher = BusWatcher(s.hive.bus)
        agent = RunningAgent(
            make_settings(s.hive, short_dir), ScriptedEngine(), {"ANTHROPIC_API_KEY": "x"}, WAIT
        )
        try:
            await s.host("send", to="alice", body="quick one")
            await agent.next_kind("turn_end", ok=True)
            # A turn that ended before the threshold, then silence past it: the next stall
            # event anywhere would be a bug. A second, hanging agent's stall bounds the wait.
            await s.hive.add_agent("bob", None)
            hang = Hang()
            bob = RunningAgent(
                make_settings(s.hive, short_dir, "bob"),
                ScriptedEngine(lambda _: [hang]),
                {"ANTHROPIC_API_KEY": "x"},
                WAIT,
            )
            try:
                await s.host("send", to="bob", body="hang")
                first = await watcher.next(lambda e: e.get("type") == "stall")
                assert first["agent"] == "bob"
            finally:
                await bob.harness.cancel()
                await bob.stop()
            assert (await row_of(s.http, "alice"))["stalled"] == []
        finally:
            await agent.stop()


async def test_an_approval_pending_past_its_threshold_is_marked_and_clears_when_decided(
    config: Config,
) -> None:
    stall = StallSettings(thinking=None, approval=THINKING, lease=None)
    async with stalling_hive(config, stall) as s:
        await s.hive.add_agent("hm1nd", None)
        watcher = BusWatcher(s.hive.bus)
        manager = s.hive.config.agent_socket("hm1nd", manager=True)
        async with await Client.connect(manager) as hm1nd:
            asked = await hm1nd.call("request_spawn", name="bob", reason="a helper")
        raised = await watcher.next(lambda e: e.get("type") == "stall")
        assert (raised["what"], raised["id"], raised["agent"]) == ("approval", asked["id"], "bob")
        assert "waited" in raised["text"] and f"#{asked['id']}" in raised["text"]
        listed = (await s.http.get("/api/approvals")).json()
        card = next(a for a in listed["pending"] if a["id"] == asked["id"])
        assert card["stalled"]["what"] == "approval"
        await s.host("deny", id=asked["id"], reason="not now")
        cleared = await watcher.next(lambda e: e.get("type") == "stall_cleared")
        assert cleared["id"] == asked["id"]
        assert await s.host("stalls") == []


async def test_a_reload_that_switches_thinking_stalls_off_clears_them(
    config: Config, short_dir: Path, hanging: tuple[Hang, ScriptedEngine]
) -> None:
    hang, engine = hanging
    stall = StallSettings(thinking=THINKING, approval=None, lease=None)
    async with stalling_hive(config, stall) as s:
        await s.hive.add_agent("alice", None)
        watcher = BusWatcher(s.hive.bus)
        agent = RunningAgent(
            make_settings(s.hive, short_dir), engine, {"ANTHROPIC_API_KEY": "x"}, WAIT
        )
        try:
            await s.host("send", to="alice", body="think")
            await watcher.next(is_stall("stall", "thinking", "alice"))
            s.hive.settings.replace(Settings(stall=StallSettings(None, None, None)))
            await watcher.next(is_stall("stall_cleared", "thinking", "alice"))
            assert hang.started.is_set() and await s.host("stalls") == []
        finally:
            await agent.harness.cancel()
            await agent.stop()


async def test_a_hanging_turn_reaches_the_operator_as_a_stall_notification(
    config: Config, short_dir: Path, hanging: tuple[Hang, ScriptedEngine]
) -> None:
    hang, engine = hanging
    receiver = Receiver()
    await receiver.start()
    sinks = (WebhookSink("hook", receiver.url("/hook"), events=frozenset({"stall"})),)
    stall = StallSettings(thinking=THINKING, approval=None, lease=None)
    try:
        async with stalling_hive(config, stall, NotifySettings(sinks=sinks)) as s:
            await s.hive.add_agent("alice", None)
            watcher = BusWatcher(s.hive.bus)
            agent = RunningAgent(
                make_settings(s.hive, short_dir), engine, {"ANTHROPIC_API_KEY": "x"}, WAIT
            )
            try:
                await s.host("send", to="alice", body="think")
                raised = await watcher.next(is_stall("stall", "thinking", "alice"))
                assert hang.started.is_set()
                got = await receiver.next(WAIT)
                wire = json.loads(got.body)
                assert got.path == "/hook" and wire["kind"] == "stall"
                assert wire["data"]["agent"] == "alice" and wire["data"]["what"] == "thinking"
                assert wire["data"]["since"] == raised["since"] and "alice" in wire["title"]
            finally:
                await agent.harness.cancel()
                await agent.stop()
    finally:
        await receiver.stop()
