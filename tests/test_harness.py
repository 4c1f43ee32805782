"""The harness turn loop with a scripted engine, against a real in-process core
over real sockets and a real history.db."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hyperhive.agent.control import AgentControl
from hyperhive.agent.engine import EngineError, EngineEvent
from hyperhive.agent.fake_engine import Hang, ScriptedEngine, Step
from hyperhive.agent.settings import AgentSettings
from hyperhive.client import Client
from hyperhive.core.hive import Hive
from support.running import RunningAgent

WAIT = 10.0


def make_settings(hive: Hive, base: Path, name: str = "alice") -> AgentSettings:
    return AgentSettings(
        name=name,
        role="agent",
        socket=hive.socket_path(hive.registry.get(name)),
        state_dir=base / name / "state",
        claude_dir=base / name / "claude",
        listen="127.0.0.1",
        port=0,
        model_file=base / name / "state" / "hyperhive-model",
        engine="fake",
    )


def start(
    settings: AgentSettings,
    engine: ScriptedEngine,
    env: dict[str, str] | None = None,
) -> RunningAgent[ScriptedEngine]:
    if env is None:
        env = {"ANTHROPIC_API_KEY": "sk-test-secret-1"}
    return RunningAgent(settings, engine, env, WAIT)


@pytest.fixture
async def alice(hive: Hive, short_dir: Path) -> AgentSettings:
    await hive.add_agent("alice", None)
    return make_settings(hive, short_dir)


async def send_as_operator(hive: Hive, to: str, body: str) -> int:
    async with await Client.connect(hive.config.host_socket) as op:
        sent: dict[str, Any] = await op.call("send", to=to, body=body)
    return int(sent["id"])


async def test_a_message_wakes_a_turn_that_is_recorded_and_acked(
    hive: Hive, alice: AgentSettings
) -> None:
    agent = start(alice, ScriptedEngine())
    control: AgentControl = agent.harness  # mypy checks the harness fits the web seam
    try:
        await agent.next_kind("state", state="idle")
        mid = await send_as_operator(hive, "alice", "hello there")
        begin = await agent.next_kind("turn_start", trigger="message")
        assert begin.data["message_id"] == mid and begin.data["from"] == "operator"
        assert "hello there" in begin.data["prompt"] and 'to="operator"' in begin.data["prompt"]
        await agent.next_kind("assistant")
        end = await agent.next_kind("turn_end", turn=begin.id)
        assert end.data["ok"] is True and end.data["session_id"] == "fake-session-1"
        assert control.status().state == "idle"
    finally:
        await agent.stop()
    # Acked: a fresh receiver finds nothing left.
    async with await Client.connect(alice.socket) as me:
        assert await me.call("recv", wait=0) is None


async def test_an_operator_prompt_waits_behind_a_running_turn(
    hive: Hive, alice: AgentSettings
) -> None:
    hang = Hang()

    def script(prompt: str) -> Sequence[Step]:
        return [hang] if "first" in prompt else [EngineEvent("assistant", {"text": "second"})]

    agent = start(alice, ScriptedEngine(script))
    try:
        await agent.harness.prompt("first")
        await asyncio.wait_for(hang.started.wait(), WAIT)
        assert agent.harness.status().state == "thinking"
        queued = await agent.harness.prompt("then this")
        assert queued.message == "queued behind 1 turn(s)"
        assert agent.harness.status().queued == 1
        cancelled = await agent.harness.prompt("/cancel")
        assert cancelled.ok
        first_end = await agent.next_kind("turn_end")
        assert first_end.data["ok"] is False
        await agent.next_kind("turn_end", ok=True)
        assert agent.engine.prompts == ["first", "then this"]
        assert agent.engine.interrupts == 1
    finally:
        await agent.stop()


async def test_cancel_without_a_running_turn_says_so(hive: Hive, alice: AgentSettings) -> None:
    agent = start(alice, ScriptedEngine())
    try:
        result = await agent.harness.cancel()
        assert not result.ok and result.message == "no turn is running"
    finally:
        await agent.stop()


async def test_model_choice_reaches_the_engine_and_survives_a_restart(
    hive: Hive, alice: AgentSettings
) -> None:
    agent = start(alice, ScriptedEngine())
    try:
        result = await agent.harness.prompt("/model claude-x")
        assert result.ok and agent.engine.model == "claude-x"
        shown = await agent.harness.prompt("/model")
        assert shown.message == "model: claude-x"
    finally:
        await agent.stop()
    assert alice.model_file.read_text() == "claude-x\n"
    again = start(alice, ScriptedEngine())
    try:
        await again.next_kind("state", state="idle")
        assert again.engine.model == "claude-x"
        await again.harness.prompt("hi")
        await again.next_kind("turn_end")
        assert again.engine.models == ["claude-x"]
    finally:
        await again.stop()


async def test_a_model_that_cannot_be_persisted_still_applies_with_a_warning(
    hive: Hive, alice: AgentSettings, short_dir: Path
) -> None:
    blocker = short_dir / "not-a-dir"
    blocker.write_text("")
    settings = replace(alice, model_file=blocker / "hyperhive-model")
    agent = start(settings, ScriptedEngine())
    try:
        result = await agent.harness.prompt("/model claude-y")
        assert result.ok and "will not survive a restart" in result.message
        assert agent.engine.model == "claude-y"
        await agent.next_kind("notice", level="warning")
    finally:
        await agent.stop()


async def test_slash_commands_answer_and_are_recorded(hive: Hive, alice: AgentSettings) -> None:
    agent = start(alice, ScriptedEngine())
    try:
        help_text = await agent.harness.prompt("/help")
        assert "/compact" in help_text.message
        unknown = await agent.harness.prompt("/frobnicate now")
        assert not unknown.ok and "unknown command /frobnicate" in unknown.message
        await agent.next_kind("command", name="frobnicate", ok=False)
        bad = await agent.harness.prompt("/model two words")
        assert not bad.ok
        cleared = await agent.harness.prompt("/clear")
        assert cleared.ok
        await agent.next_kind("turn_end")
        assert agent.engine.prompts == ["/clear"]
    finally:
        await agent.stop()


async def test_a_failing_turn_is_recorded_and_the_loop_goes_on(
    hive: Hive, alice: AgentSettings
) -> None:
    async def explode() -> None:
        raise EngineError("the engine fell over")

    def script(prompt: str) -> Sequence[Step]:
        return [explode] if "boom" in prompt else []

    agent = start(alice, ScriptedEngine(script))
    try:
        await send_as_operator(hive, "alice", "boom")
        failed = await agent.next_kind("turn_end")
        assert failed.data["ok"] is False and failed.data["error"] == "the engine fell over"
        await send_as_operator(hive, "alice", "fine")
        # "boom" is tried again until it is a dead letter (test_redelivery.py), then "fine".
        await agent.next_kind("turn_end", ok=True)
    finally:
        await agent.stop()


async def test_the_agent_goes_offline_without_its_socket_and_comes_back(
    hive: Hive, alice: AgentSettings
) -> None:
    agent = start(alice, ScriptedEngine())
    try:
        await agent.next_kind("state", state="idle")
        await hive.shutdown(grace=1)
        offline = await agent.next_kind("state", state="offline")
        assert offline.data["reason"] == "core"
        revived = Hive(hive.config)
        await revived.start()
        try:
            await agent.next_kind("state", state="idle")
            await send_as_operator(revived, "alice", "welcome back")
            assert (await agent.next_kind("turn_end")).data["ok"] is True
        finally:
            await revived.shutdown(grace=1)
        # The fixture's teardown shuts down the original hive a second time.
        hive.broker.close()
    finally:
        await agent.stop()


async def test_a_harness_stopped_mid_turn_gets_its_message_again(
    hive: Hive, alice: AgentSettings
) -> None:
    hang = Hang()
    agent = start(alice, ScriptedEngine(lambda prompt: [hang]))
    mid = await send_as_operator(hive, "alice", "long job")
    await asyncio.wait_for(hang.started.wait(), WAIT)
    await agent.stop()  # as if killed: the turn never finished, nothing was acked

    again = start(alice, ScriptedEngine())
    try:
        begin = await again.next_kind("turn_start", trigger="message")
        assert begin.data["message_id"] == mid
    finally:
        await again.stop()


async def test_secrets_never_reach_history(hive: Hive, alice: AgentSettings) -> None:
    secret = "sk-ant-api03-very-secret-key"

    def leaky(prompt: str) -> Sequence[Step]:
        return [EngineEvent("assistant", {"text": f"my key is {secret}"})]

    agent = start(alice, ScriptedEngine(leaky), env={"ANTHROPIC_API_KEY": secret})
    try:
        await agent.harness.prompt("tell me")
        text = (await agent.next_kind("assistant")).data["text"]
        assert secret not in text and "[redacted]" in text
        await agent.next_kind("turn_end")
    finally:
        await agent.stop()
    assert secret.encode() not in alice.history_db.read_bytes()


async def test_without_credentials_the_agent_asks_for_a_login(
    hive: Hive, alice: AgentSettings
) -> None:
    agent = start(alice, ScriptedEngine(), env={})
    try:
        await agent.next_kind("state", state="offline", reason="login")
        assert agent.harness.status().needs_login
    finally:
        await agent.stop()


async def test_behind_the_gateway_the_login_is_the_cores_and_the_harness_takes_no_key(
    hive: Hive, alice: AgentSettings
) -> None:
    behind = replace(alice, api_socket=alice.socket.parent / "api.sock")
    agent = start(behind, ScriptedEngine(), env={})
    try:
        await agent.next_kind("state", state="offline", reason="login")
        assert agent.harness.status().needs_login
        refused = await agent.harness.save_api_key("sk-ant-api03-pasted-key")
        assert not refused.ok and "dashboard" in refused.message
        async with await Client.connect(hive.config.host_socket) as op:
            await op.call("login_save", agent="alice", kind="api_key", value="sk-ant-api03-k")
        await agent.next_kind("state", state="idle")
        assert not agent.harness.status().needs_login
    finally:
        await agent.stop()
    assert list(alice.claude_dir.glob("*hyperhive*")) == []
    assert b"pasted-key" not in alice.history_db.read_bytes()


async def test_a_core_that_accepts_and_refuses_is_retried_with_backoff_not_hammered(
    short_dir: Path,
) -> None:
    # A core at its connection cap accepts, answers `busy` and hangs up.
    path = short_dir / "busy.sock"
    attempts: list[float] = []
    fourth = asyncio.Event()
    busy = b'{"id":null,"ok":false,"error":{"code":"busy","message":"at the cap"}}\n'

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) == 4:
            fourth.set()
        writer.write(busy)
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(refuse, str(path))
    settings = AgentSettings(
        name="alice", role="agent", socket=path, state_dir=short_dir / "state",
        claude_dir=short_dir / "claude", listen="127.0.0.1", port=0,
        model_file=short_dir / "state" / "model", engine="fake",
    )  # fmt: skip
    agent = start(settings, ScriptedEngine())
    try:
        await asyncio.wait_for(fourth.wait(), WAIT)
    finally:
        await agent.stop()
        server.close()
    gaps = [b - a for a, b in itertools.pairwise(attempts[:4])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps
