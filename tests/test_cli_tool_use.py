"""The operator's ToolUse commands on the real ``hive`` CLI against a real ``hive-c0re``:
requests shown whole and escaped, approve once or always, rules listed and revoked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import Daemon
from hyperhive.client import Client

pytestmark = pytest.mark.usefixtures("both_stores")

# What an agent may send: markup, a newline, a C1 control (CSI, which terminals obey), a
# bidi override, and an integer JavaScript would round.
HOSTILE = {
    "command": "echo <b>hi</b>\n\x9b2J",
    "note": "\u202eevil",
    "n": 12345678901234567890,
}


async def ask(daemon: Daemon, tool_input: dict[str, Any]) -> dict[str, Any]:
    socket = daemon.run_dir / "agents" / "alice" / "mcp.sock"
    async with await Client.connect(socket) as client:
        answer: dict[str, Any] = await client.call("tool_use", tool="Bash", input=tool_input)
        return answer


async def test_a_tool_use_is_shown_whole_and_escaped_then_approved_always_and_revoked(
    daemon: Daemon,
) -> None:
    assert daemon.cli("agents", "add", "alice").returncode == 0
    asked = await ask(daemon, HOSTILE)
    listed = daemon.cli("approvals")
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout
    assert "tool use #1 by alice: Bash" in out
    assert '"command": "echo <b>hi</b>\\n\\x9b2J"' in out  # JSON's \n, the sanitiser's \x9b
    assert '"note": "\\u202eevil"' in out
    assert '"n": 12345678901234567890' in out
    assert "\x9b" not in out and "\u202e" not in out
    one = daemon.cli("approval", str(asked["approval"])).stdout
    assert "tool Bash" in one and "input:" in one and "12345678901234567890" in one
    assert "\x9b" not in one

    approved = daemon.cli("approve", "1", "--always")
    assert approved.returncode == 0, approved.stderr
    assert "approval #1 applied: alice may run every identical call from now on" in approved.stdout
    assert (await ask(daemon, HOSTILE))["decision"] == "allow"
    rules = daemon.cli("rules").stdout
    assert rules.startswith("#1 alice Bash {") and "— active" in rules and "(approval #1)" in rules
    assert "\x9b" not in rules
    assert daemon.cli("rules", "bob").stdout.strip() == "no tool rules"
    [rule] = json.loads(daemon.cli("rules", "alice", "--json").stdout)
    assert rule["input"] == HOSTILE

    revoked = daemon.cli("revoke", "1")
    assert revoked.stdout.strip() == "revoked rule #1: alice Bash asks again"
    twice = daemon.cli("revoke", "1")
    assert twice.returncode == 1 and "already revoked" in twice.stderr
    assert "revoked " in daemon.cli("rules").stdout

    again = await ask(daemon, HOSTILE)
    once = daemon.cli("approve", str(again["approval"]))
    assert f"approval #{again['approval']} approved: alice may run its next identical call" in (
        once.stdout
    )


async def test_always_for_another_kind_fails_and_leaves_it_pending(daemon: Daemon) -> None:
    assert daemon.cli("agents", "add", "hm1nd").returncode == 0
    async with await Client.connect(daemon.run_dir / "manager" / "mcp.sock") as client:
        await client.call("request_spawn", name="carol", reason="a tester")
    refused = daemon.cli("approve", "1", "--always")
    assert refused.returncode == 1 and "only a tool use can be approved always" in refused.stderr
    assert json.loads(daemon.cli("approvals", "--json").stdout)["pending"][0]["state"] == "pending"
