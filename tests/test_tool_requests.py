"""A harness's record of its tool uses that wait for the operator, and the wake prompt the
operator's decision makes: a real in-process core over real sockets, a scripted engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hyperhive.agent.fake_engine import ScriptedEngine
from hyperhive.agent.permissions import core_ask
from hyperhive.agent.prompts import wake_prompt
from hyperhive.agent.settings import AgentSettings
from hyperhive.agent.tool_requests import from_answer, from_decision, noting
from hyperhive.client import Client
from hyperhive.core.hive import Hive
from test_harness import make_settings, start

LS = {"command": "ls", "description": "list"}


async def operator(hive: Hive, op: str, **args: Any) -> Any:
    async with await Client.connect(hive.config.host_socket) as client:
        return await client.call(op, **args)


async def test_the_history_follows_a_tool_use_from_asked_to_approved_to_used(
    hive: Hive, short_dir: Path
) -> None:
    await hive.add_agent("alice", None)
    settings: AgentSettings = make_settings(hive, short_dir)
    agent = start(settings, ScriptedEngine())
    try:
        await agent.next_kind("state", state="idle")
        ask = noting(core_ask(settings.socket), agent.harness.note_tool_request)
        asked: Any = await ask("Bash", LS)
        noted = await agent.next_kind("tool_approval", decision="pending")
        assert noted.data == {
            "approval": asked["approval"],
            "tool": "Bash",
            "input": LS,
            "decision": "pending",
            "message": asked["message"],
            "always": False,
            "rule": None,
        }
        await operator(hive, "approve", id=asked["approval"])
        decided = await agent.next_kind("tool_approval", decision="approved")
        assert (decided.data["approval"], decided.data["input"]) == (asked["approval"], LS)
        turn = await agent.next_kind("turn_start", trigger="message")
        assert "was APPROVED by the operator" in turn.data["prompt"]
        assert (
            'exactly the same input now: {"command":"ls","description":"list"}'
            in turn.data["prompt"]
        )
        assert (await ask("Bash", LS))["decision"] == "allow"  # type: ignore[index]
        await agent.next_kind("tool_approval", decision="allow")
    finally:
        await agent.stop()


async def test_a_failing_record_never_changes_the_cores_answer(hive: Hive) -> None:
    await hive.add_agent("alice", None)

    def broken(tool: str, tool_input: dict[str, Any], answer: object) -> None:
        raise OSError("disk full")

    ask = noting(core_ask(hive.config.agent_socket("alice", manager=False)), broken)
    answer: Any = await ask("Bash", LS)
    assert answer["decision"] == "pending"


def decision(state: str, **more: Any) -> dict[str, Any]:
    payload = {
        "id": 4,
        "kind": "tool_use",
        "agent": "alice",
        "tool": "Bash",
        "input_json": '{"command":"ls"}',
        "state": state,
        "always": False,
        "decision_reason": None,
        **more,
    }
    return {
        "id": 9,
        "from": "c0re",
        "kind": "event",
        "body": "approval_decided",
        "payload": payload,
    }


def test_the_wake_prompt_says_plainly_what_to_do_with_each_decision() -> None:
    once = wake_prompt("alice", decision("approved"))
    assert 'Call Bash again with exactly the same input now: {"command":"ls"}' in once
    assert "allowed once" in once
    always = wake_prompt("alice", decision("applied", always=True))
    assert "exactly the same input now" in always and "identical calls pass" in always
    denied = wake_prompt("alice", decision("denied", decision_reason="not on friday"))
    assert "DENIED" in denied and "not on friday" in denied
    assert "Do not retry the same Bash call" in denied
    huge = wake_prompt("alice", decision("approved", input_json='{"c":"' + "x" * 5000 + '"}'))
    assert "(the same 5008 chars as before)" in huge


def test_only_this_agents_tool_use_decisions_are_recorded() -> None:
    assert from_decision("alice", decision("denied", decision_reason="no")) == {
        "approval": 4,
        "tool": "Bash",
        "input": {"command": "ls"},
        "decision": "denied",
        "message": "no",
        "always": False,
        "rule": None,
    }
    assert from_decision("bob", decision("approved")) is None
    assert from_decision("alice", decision("approved", kind="spawn")) is None
    assert from_decision("alice", {**decision("approved"), "kind": "message"}) is None
    assert from_answer("Bash", LS, {"decision": "maybe"}) is None
    assert from_answer("Bash", LS, "allow") is None
