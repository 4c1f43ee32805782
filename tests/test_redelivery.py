"""What becomes of a message whose turn fails: the real harness with the scripted engine,
against a real in-process core over real sockets, its sqlite read back after.

Trouble that is not the message's (no login, the API down, the engine not starting)
keeps it in the queue; a failure of its own counts an attempt, and after three it is a
dead letter; a harness that dies mid-turn counts nothing."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from hyperhive.agent.engine import EngineError, EngineEvent, EngineUnavailable, NotLoggedIn
from hyperhive.agent.failures import Backoff
from hyperhive.agent.fake_engine import EndWith, Hang, Raise, Script, ScriptedEngine, Step
from hyperhive.agent.settings import AgentSettings
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.gateway.seams import Credential
from hyperhive.core.hive import Hive
from support.bus import BusWatcher
from support.running import RunningAgent
from support.stores import peek
from test_harness import WAIT, alice, send_as_operator, start

pytestmark = pytest.mark.usefixtures("both_stores")

__all__ = ["alice"]  # the fixture, shared with test_harness


def stored(config: Config, mid: int) -> tuple[float | None, int, float | None, str | None]:
    """(delivered_at, attempts, dead_at, dead_reason) of one message, as sqlite has it."""
    (row,) = peek(
        config,
        "SELECT delivered_at, attempts, dead_at, dead_reason FROM messages WHERE id = ?",
        (mid,),
    )
    return row[0], row[1], row[2], row[3]


def waiting(config: Config, mid: int) -> bool:
    """Neither delivered nor counted nor dead: the message as it was sent."""
    return stored(config, mid) == (None, 0, None, None)


async def test_a_message_whose_turn_found_no_login_is_handled_after_the_login(
    hive: Hive, alice: AgentSettings
) -> None:
    # The hive holds a key the engine is refused with; the agent's own, saved later, works.
    hive.credentials.save("api_key", "sk-ant-api03-revoked-key")
    saved = Credential("api_key", "sk-ant-api03-saved-on-the-page")

    def script(prompt: str) -> Sequence[Step]:
        if hive.credentials.for_agent("alice") != saved:
            return [Raise(NotLoggedIn("Not logged in · Please run /login"))]
        return [EngineEvent("assistant", {"text": "hello back"})]

    behind = replace(alice, api_socket=alice.socket.parent / "api.sock")
    agent = start(behind, ScriptedEngine(script), env={})
    try:
        await agent.next_kind("state", state="idle")
        mid = await send_as_operator(hive, "alice", "first words")
        first = await agent.next_kind("turn_start", message_id=mid)
        failed = await agent.next_kind("turn_end", turn=first.id)
        assert failed.data["ok"] is False and "Not logged in" in failed.data["error"]
        held = await agent.next_kind("notice", level="warning")
        assert f"message #{mid} is back in the queue until a login" in held.data["text"]
        status = agent.harness.status()
        assert (status.state, status.reason, status.needs_login) == ("offline", "login", True)
        assert waiting(hive.config, mid) and hive.broker.pending() == {"alice": 1}

        async with await Client.connect(hive.config.host_socket) as op:
            await op.call("login_save", agent="alice", kind=saved.kind, value=saved.value)
        again = await agent.next_kind("turn_start", message_id=mid)
        done = await agent.next_kind("turn_end", turn=again.id)
        assert done.data["ok"] is True
        assert agent.harness.status().state == "idle"
    finally:
        await agent.stop()
    delivered, attempts, dead_at, _ = stored(hive.config, mid)
    assert delivered is not None and attempts == 0 and dead_at is None
    assert len(agent.engine.prompts) == 2 and agent.engine.prompts[0] == agent.engine.prompts[1]
    async with await Client.connect(alice.socket) as me:
        assert await me.call("recv", wait=0) is None  # acked once: nothing is left


OVERLOADED = EndWith(
    {
        "is_error": True,
        "text": "API Error: 529 Overloaded",
        "api_error_status": 529,
        "api_error": "server_error",
    }
)


@pytest.mark.parametrize(
    ("trouble", "cause"),
    [(OVERLOADED, "upstream"), (Raise(EngineUnavailable("cannot start Claude Code")), "engine")],
    ids=["upstream", "engine"],
)
async def test_trouble_upstream_or_in_the_engine_sends_the_message_back_with_a_growing_backoff(
    hive: Hive, alice: AgentSettings, trouble: Step, cause: str
) -> None:
    tries = itertools.count(1)

    def script(prompt: str) -> Sequence[Step]:
        return [trouble] if next(tries) <= 2 else [EngineEvent("assistant", {"text": "made it"})]

    env = {"ANTHROPIC_API_KEY": "sk-test-secret-1"}
    agent = RunningAgent(alice, ScriptedEngine(script), env, WAIT, backoff=Backoff(0.2, 10.0))
    try:
        mid = await send_as_operator(hive, "alice", "please work")
        for delay in (0.2, 0.4):  # doubling
            await agent.next_kind("turn_end", ok=False)
            notice = await agent.next_kind("notice", level="warning")
            assert (
                f"message #{mid} is back in the queue; next try in {delay:g} s"
                in notice.data["text"]
            )
            held = await agent.next_kind("state", state="backoff")
            assert held.data["reason"].startswith(f"{cause}: ")
            assert agent.harness.status().reason == held.data["reason"]
            assert waiting(hive.config, mid)
            retried = await agent.next_kind("turn_start", message_id=mid)
            assert retried.ts - notice.ts >= delay - 0.01
        done = await agent.next_kind("turn_end")
        assert done.data["ok"] is True
    finally:
        await agent.stop()
    delivered, attempts, _, _ = stored(hive.config, mid)
    assert delivered is not None and attempts == 0


async def test_a_message_that_fails_for_its_own_sake_is_a_dead_letter_after_three_tries(
    hive: Hive, alice: AgentSettings
) -> None:
    await hive.add_agent("hm1nd", None)

    def script(prompt: str) -> Sequence[Step]:
        return [Raise(EngineError("this one breaks the engine"))] if "poison" in prompt else []

    watcher = BusWatcher(hive.bus)
    agent = start(alice, ScriptedEngine(script))
    try:
        mid = await send_as_operator(hive, "alice", "poison")
        for _ in range(3):
            begin = await agent.next_kind("turn_start", message_id=mid)
            end = await agent.next_kind("turn_end", turn=begin.id)
            assert end.data["error"] == "this one breaks the engine"
        dead = await watcher.next(lambda e: e.get("type") == "dead_letter")
        assert (dead["message"]["id"], dead["attempts"]) == (mid, 3)
        assert dead["reason"] == "this one breaks the engine"
        notice = await agent.next_kind("notice", level="error")
        assert f"message #{mid} failed 3 times; it is a dead letter now" in notice.data["text"]
        fine = await send_as_operator(hive, "alice", "fine")
        assert (await agent.next_kind("turn_start")).data["message_id"] == fine
        await agent.next_kind("turn_end", ok=True)
    finally:
        await agent.stop()
    _, attempts, dead_at, reason = stored(hive.config, mid)
    assert attempts == 3 and dead_at is not None and reason == "this one breaks the engine"
    # hm1nd hears of it like other agent trouble: ids and the reason, never the body.
    manager_socket = hive.socket_path(hive.registry.get("hm1nd"))
    async with await Client.connect(manager_socket) as manager:
        told: dict[str, Any] = (await manager.call("recv", wait=WAIT))["message"]
    assert (told["kind"], told["body"]) == ("event", "dead_letter")
    assert told["payload"] == {
        "message_id": mid,
        "from": "operator",
        "to": "alice",
        "attempts": 3,
        "reason": "this one breaks the engine",
    }
    assert "poison" not in json.dumps(told)


async def test_a_dead_letter_is_not_handed_out_again_after_a_core_restart(
    hive: Hive, alice: AgentSettings
) -> None:
    async with await Client.connect(alice.socket) as me:
        mid = await send_as_operator(hive, "alice", "poison")
        for _ in range(3):
            got = await me.call("recv", wait=WAIT, lease=True)
            assert got["message"]["id"] == mid
            await me.call("fail", lease=got["lease"], reason="it breaks the engine")
    await hive.shutdown(grace=1)
    revived = Hive(hive.config)
    await revived.start()
    try:
        agent = start(alice, ScriptedEngine())
        try:
            later = await send_as_operator(revived, "alice", "after the restart")
            begin = await agent.next_kind("turn_start")
            assert begin.data["message_id"] == later
            await agent.next_kind("turn_end", ok=True)
        finally:
            await agent.stop()
        assert len(agent.engine.prompts) == 1
        assert [d["id"] for d in revived.broker.dead.listing(None, 10)] == [mid]
        assert revived.broker.pending() == {}
    finally:
        await revived.shutdown(grace=1)
    hive.broker.close()  # the fixture's teardown shuts the original down once more


def hanging(hang: Hang) -> Script:
    return lambda prompt: [hang]


async def test_a_harness_killed_mid_turn_counts_no_attempt(
    hive: Hive, alice: AgentSettings
) -> None:
    mid = await send_as_operator(hive, "alice", "long job")
    for _ in range(4):  # more often than a failing message may fail
        hang = Hang()
        agent = start(alice, ScriptedEngine(hanging(hang)))
        await asyncio.wait_for(hang.started.wait(), WAIT)
        await agent.stop()  # as if killed: the turn never ended, its lease is released
        assert waiting(hive.config, mid)
    finisher = start(alice, ScriptedEngine())
    try:
        begin = await finisher.next_kind("turn_start", message_id=mid)
        assert (await finisher.next_kind("turn_end", turn=begin.id)).data["ok"] is True
    finally:
        await finisher.stop()
    assert stored(hive.config, mid)[0] is not None


async def test_a_message_whose_turn_the_operator_cancels_is_acked_not_tried_again(
    hive: Hive, alice: AgentSettings
) -> None:
    hang = Hang()
    agent = start(alice, ScriptedEngine(lambda prompt: [hang] if "long" in prompt else []))
    try:
        mid = await send_as_operator(hive, "alice", "a long job")
        await asyncio.wait_for(hang.started.wait(), WAIT)
        assert (await agent.harness.cancel()).ok
        assert (await agent.next_kind("turn_end")).data["ok"] is False
        after = await send_as_operator(hive, "alice", "next")
        assert (await agent.next_kind("turn_start")).data["message_id"] == after
        await agent.next_kind("turn_end", ok=True)
    finally:
        await agent.stop()
    delivered, attempts, _, _ = stored(hive.config, mid)
    assert delivered is not None and attempts == 0


async def test_an_operator_prompt_failing_for_want_of_a_login_is_reported_once(
    hive: Hive, alice: AgentSettings
) -> None:
    agent = start(alice, ScriptedEngine(lambda prompt: [Raise(NotLoggedIn("Invalid API key"))]))
    try:
        await agent.next_kind("state", state="idle")
        await agent.harness.prompt("hello?")
        end = await agent.next_kind("turn_end")
        assert (end.data["ok"], end.data["error"]) == (False, "Invalid API key")
        status = agent.harness.status()
        assert (status.state, status.reason, status.needs_login) == ("offline", "login", True)
        assert status.queued == 0 and agent.engine.prompts == ["hello?"]
    finally:
        await agent.stop()
