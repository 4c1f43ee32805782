"""The harness with the real Claude Code CLI (bundled in claude-agent-sdk) against
the scripted fake Messages API, and a real in-process core over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from hyperhive.agent.claude import ClaudeEngine
from hyperhive.agent.failures import Backoff
from hyperhive.agent.settings import AgentSettings
from hyperhive.agent.tools import HiveTools
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from support.fake_anthropic import (
    FakeAnthropic,
    HangReply,
    Turns,
    reply_error,
    reply_text,
    reply_tool_use,
)
from support.running import RunningAgent

WAIT = 60.0
SAVED_KEY = "sk-ant-api03-saved-on-the-page"


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


def start_agent(settings: AgentSettings, env: dict[str, str]) -> RunningAgent[ClaudeEngine]:
    engine = ClaudeEngine(settings, HiveTools(settings.socket), env=env)
    return RunningAgent(settings, engine, env, WAIT)


@pytest.fixture
async def alice(hive: Hive, short_dir: Path) -> AgentSettings:
    await hive.add_agent("alice", ["bob", "operator"])
    await hive.add_agent("bob", None)
    base = short_dir / "alice"
    return AgentSettings(
        name="alice",
        role="agent",
        socket=hive.socket_path(hive.registry.get("alice")),
        state_dir=base / "state",
        claude_dir=base / "claude",
        listen="127.0.0.1",
        port=0,
        model_file=base / "state" / "hyperhive-model",
    )


def cli_env(api: FakeAnthropic, settings: AgentSettings) -> dict[str, str]:
    home = settings.claude_dir.parent / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {**api.env(), "HOME": str(home), "PATH": "/usr/bin:/bin"}


async def test_a_message_makes_claude_call_the_hive_send_tool(
    hive: Hive, alice: AgentSettings, api: FakeAnthropic
) -> None:
    api.script = Turns(
        reply_tool_use("mcp__hive__send", {"to": "bob", "body": "hello bob"}),
        reply_text("told bob"),
    )
    agent = start_agent(alice, cli_env(api, alice))
    try:
        async with await Client.connect(hive.config.host_socket) as op:
            await op.call("send", to="alice", body="please greet bob")
        used = await agent.next_kind("tool_use", name="mcp__hive__send")
        assert used.data["input"] == {"to": "bob", "body": "hello bob"}
        result = await agent.next_kind("tool_result")
        assert result.data["is_error"] is False and '"from": "alice"' in result.data["content"]
        end = await agent.next_kind("turn_end")
        assert end.data["ok"] is True and end.data["session_id"]
    finally:
        await agent.stop()
    assert [(m.sender, m.body) for m in hive.broker.history("bob", 5)] == [("alice", "hello bob")]
    wake = api.turn_requests[0].last_user_text()
    assert "please greet bob" in wake and "from operator" in wake
    assert "You are alice" in api.turn_requests[0].system_text


async def test_a_core_refusal_reaches_the_model_as_a_tool_error(
    hive: Hive, alice: AgentSettings, api: FakeAnthropic
) -> None:
    api.script = Turns(
        reply_tool_use("mcp__hive__send", {"to": "hm1nd", "body": "not on my list"}),
        reply_text("ok"),
    )
    agent = start_agent(alice, cli_env(api, alice))
    try:
        await agent.harness.prompt("message the manager")
        used = await agent.next_kind("tool_use", name="mcp__hive__send")
        result = await agent.next_kind("tool_result", tool_use_id=used.data["id"])
        assert result.data["is_error"] is True
        assert "no participant named 'hm1nd'" in result.data["content"]
        await agent.next_kind("turn_end")
    finally:
        await agent.stop()
    tool_results = api.turn_requests[-1].tool_results()
    assert tool_results and "hm1nd" in tool_results[-1].text


async def test_cancel_stops_a_turn_mid_stream_and_the_next_turn_works(
    hive: Hive, alice: AgentSettings, api: FakeAnthropic
) -> None:
    hang = HangReply()
    api.script = Turns(hang, reply_text("second answer"))
    agent = start_agent(alice, cli_env(api, alice))
    try:
        await agent.harness.prompt("a long task")
        await asyncio.wait_for(hang.started.wait(), WAIT)
        assert (await agent.harness.prompt("/cancel")).ok
        await asyncio.wait_for(hang.disconnected.wait(), WAIT)
        first = await agent.next_kind("turn_end")
        assert first.data["ok"] is False
        await agent.harness.prompt("now something quick")
        text = await agent.next_kind("assistant", text="second answer")
        assert text.id > first.id
        assert (await agent.next_kind("turn_end")).data["ok"] is True
    finally:
        await agent.stop()


async def test_model_choice_reaches_the_api_and_survives_a_restart(
    hive: Hive, alice: AgentSettings, api: FakeAnthropic
) -> None:
    api.script = Turns(reply_text("one"), reply_text("two"))
    agent = start_agent(alice, cli_env(api, alice))
    try:
        assert (await agent.harness.prompt("/model claude-x-test")).ok
        await agent.harness.prompt("hello")
        await agent.next_kind("turn_end")
    finally:
        await agent.stop()
    assert api.turn_requests[-1].model == "claude-x-test"

    again = start_agent(alice, cli_env(api, alice))  # a new harness, a new CLI process
    try:
        await again.harness.prompt("still there?")
        await again.next_kind("turn_end")
    finally:
        await again.stop()
    assert api.turn_requests[-1].model == "claude-x-test"


async def test_clear_starts_a_new_session_and_restarts_resume_the_old_one(
    hive: Hive, alice: AgentSettings, api: FakeAnthropic
) -> None:
    api.script = Turns(reply_text("one"), reply_text("two"), reply_text("three"))
    agent = start_agent(alice, cli_env(api, alice))
    try:
        await agent.harness.prompt("first")
        first = (await agent.next_kind("turn_end")).data["session_id"]
        await agent.harness.prompt("/clear")
        await agent.next_kind("turn_end")
        await agent.harness.prompt("after clear")
        cleared = (await agent.next_kind("turn_end")).data["session_id"]
    finally:
        await agent.stop()
    assert first and cleared and cleared != first
    assert alice.session_file.read_text().strip() == cleared

    again = start_agent(replace(alice), cli_env(api, alice))
    try:
        await again.harness.prompt("resumed?")
        end = await again.next_kind("turn_end")
        resumed = end.data["session_id"]
    finally:
        await again.stop()
    assert resumed == cleared


async def test_the_first_message_to_a_fresh_agent_without_a_key_survives_until_the_login(
    config: Config, short_dir: Path, api: FakeAnthropic
) -> None:
    # A core whose env names the upstream but holds no key: nothing to send requests with.
    hive = Hive(config, env={"ANTHROPIC_BASE_URL": api.base_url})
    await hive.start()
    api.script = Turns(reply_text("now I can answer"))
    try:
        await hive.add_agent("alice", None)
        alice = settings_for(hive, "alice", short_dir)
        agent = start_agent(alice, container_env(api, alice))
        try:
            await agent.next_kind("state", state="offline", reason="login")
            async with await Client.connect(config.host_socket) as op:
                mid = (await op.call("send", to="alice", body="my first words"))["id"]
                first = await agent.next_kind("turn_start", message_id=mid)
                failed = await agent.next_kind("turn_end", turn=first.id)
                # The gateway said so: no credential in the hive, nothing reached the API.
                assert failed.data["ok"] is False and "log in on its page" in failed.data["error"]
                await agent.next_kind("notice", level="warning")
                assert agent.harness.status().reason == "login" and api.turn_requests == []
                assert hive.broker.pending() == {"alice": 1}

                await op.call("login_save", agent="alice", kind="api_key", value=SAVED_KEY)
                again = await agent.next_kind("turn_start", message_id=mid)
                await agent.next_kind("assistant", text="now I can answer")
                assert (await agent.next_kind("turn_end", turn=again.id)).data["ok"] is True
        finally:
            await agent.stop()
        delivered, attempts = hive.conn.execute(
            "SELECT delivered_at, attempts FROM messages WHERE id = ?", (mid,)
        ).fetchone()
        assert delivered is not None and attempts == 0
    finally:
        await hive.shutdown(grace=2)
    (request,) = api.turn_requests
    assert "my first words" in request.last_user_text()
    # The key the operator saved went upstream, added by the core; the CLI sent only the
    # placeholder, which never left the gateway.
    assert request.auth == {"x-api-key": SAVED_KEY}
    assert SAVED_KEY not in alice.history_db.read_bytes().decode(errors="replace")


async def test_a_key_the_api_refuses_sends_the_message_back_until_a_new_login(
    config: Config, short_dir: Path, api: FakeAnthropic
) -> None:
    hive = Hive(config, env={**api.env(), "ANTHROPIC_API_KEY": "sk-ant-api03-revoked"})
    await hive.start()
    api.script = Turns(
        reply_error(401, "authentication_error", "invalid x-api-key"), reply_text("better")
    )
    try:
        await hive.add_agent("alice", None)
        alice = settings_for(hive, "alice", short_dir)
        agent = start_agent(alice, container_env(api, alice))
        try:
            async with await Client.connect(config.host_socket) as op:
                mid = (await op.call("send", to="alice", body="are you there"))["id"]
                first = await agent.next_kind("turn_start", message_id=mid)
                assert (await agent.next_kind("turn_end", turn=first.id)).data["ok"] is False
                held = await agent.next_kind("notice", level="warning")
                assert f"message #{mid} is back in the queue until a login" in held.data["text"]
                assert agent.harness.status().reason == "login"
                await op.call("login_save", kind="api_key", value=SAVED_KEY)  # the hive's
                again = await agent.next_kind("turn_start", message_id=mid)
                await agent.next_kind("assistant", text="better")
                assert (await agent.next_kind("turn_end", turn=again.id)).data["ok"] is True
        finally:
            await agent.stop()
    finally:
        await hive.shutdown(grace=2)
    assert [r.auth for r in api.turn_requests] == [
        {"x-api-key": "sk-ant-api03-revoked"},
        {"x-api-key": SAVED_KEY},
    ]


def container_env(api: FakeAnthropic, settings: AgentSettings) -> dict[str, str]:
    """The CLI's settings as a container gets them from the core: no ANTHROPIC_* at all."""
    return {k: v for k, v in cli_env(api, settings).items() if not k.startswith("ANTHROPIC_")}


def settings_for(hive: Hive, name: str, base: Path) -> AgentSettings:
    """``name``'s harness in the test's process, behind the hive's gateway."""
    socket = hive.socket_path(hive.registry.get(name))
    return AgentSettings(
        name=name,
        role="agent",
        socket=socket,
        state_dir=base / name / "state",
        claude_dir=base / name / "claude",
        listen="127.0.0.1",
        port=0,
        model_file=base / name / "state" / "hyperhive-model",
        api_socket=socket.parent / "api.sock",
    )


async def test_an_overloaded_api_sends_the_message_back_and_a_later_try_answers_it(
    hive: Hive, alice: AgentSettings, api: FakeAnthropic
) -> None:
    api.script = Turns(
        reply_error(529, "overloaded_error", "Overloaded"), reply_text("second time lucky")
    )
    env = cli_env(api, alice)
    engine = ClaudeEngine(alice, HiveTools(alice.socket), env=env)
    agent = RunningAgent(alice, engine, env, WAIT, backoff=Backoff(0.2, 1.0))
    try:
        async with await Client.connect(hive.config.host_socket) as op:
            mid = (await op.call("send", to="alice", body="busy day"))["id"]
        first = await agent.next_kind("turn_start", message_id=mid)
        failed = await agent.next_kind("turn_end", turn=first.id)
        assert failed.data["ok"] is False and "529" in failed.data["error"]
        held = await agent.next_kind("state", state="backoff")
        assert held.data["reason"].startswith("upstream: ")
        again = await agent.next_kind("turn_start", message_id=mid)
        await agent.next_kind("assistant", text="second time lucky")
        assert (await agent.next_kind("turn_end", turn=again.id)).data["ok"] is True
    finally:
        await agent.stop()
    row = hive.conn.execute(
        "SELECT delivered_at, attempts FROM messages WHERE id = ?", (mid,)
    ).fetchone()
    assert row[0] is not None and row[1] == 0
