"""ToolUse approvals over a real ``hive-c0re``'s sockets: an agent asks on its own socket,
the operator decides on host.sock, and the agent's next identical call gets the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon, start_daemon, stop_daemon
from hyperhive.client import Client, RemoteError
from hyperhive.config import Config
from hyperhive.core.approval_queue import MAX_PENDING_PER_REQUESTER
from hyperhive.core.hive import Hive

pytestmark = pytest.mark.usefixtures("both_stores")

LS = {"command": "ls -la", "description": "list"}


async def call(path: Path, op: str, **args: Any) -> Any:
    async with await Client.connect(path) as client:
        return await client.call(op, **args)


async def refused(path: Path, op: str, **args: Any) -> RemoteError:
    with pytest.raises(RemoteError) as raised:
        await call(path, op, **args)
    return raised.value


def nested(depth: int) -> dict[str, Any]:
    """Objects and lists ``depth`` levels deep (the outermost an object)."""
    value: Any = []
    for level in range(depth - 2):
        value = {"a": value} if level % 2 else [value]
    return {"top": value}


class Hived:
    """The daemon, spoken to as the operator and as its agents."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def host(self, op: str, **args: Any) -> Any:
        return await call(self.daemon.host_socket, op, **args)

    def socket(self, agent: str) -> Path:
        if agent == "hm1nd":
            return self.daemon.run_dir / "manager" / "mcp.sock"
        return self.daemon.run_dir / "agents" / agent / "mcp.sock"

    async def ask(self, agent: str, tool: str, tool_input: Any) -> dict[str, Any]:
        answer: dict[str, Any] = await call(
            self.socket(agent), "tool_use", tool=tool, input=tool_input
        )
        return answer

    async def inbox(self, agent: str) -> dict[str, Any]:
        got = await call(self.socket(agent), "recv", wait=10)
        assert got is not None, f"nothing reached {agent}'s inbox"
        message: dict[str, Any] = got["message"]
        return message

    async def pending(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = (await self.host("approvals"))["pending"]
        return listed


@pytest.fixture
async def hd(daemon: Daemon) -> Hived:
    hived = Hived(daemon)
    await hived.host("agent_add", name="alice")
    return hived


async def test_an_ask_queues_one_approval_showing_the_tool_and_its_exact_input(
    hd: Hived,
) -> None:
    first = await hd.ask("alice", "Bash", LS)
    assert first == {
        "decision": "pending",
        "approval": 1,
        "rule": None,
        "message": "waiting for the operator (approval #1)",
    }
    # The same call again, its keys in another order: the same request, not a second one.
    again = await hd.ask("alice", "Bash", {"description": "list", "command": "ls -la"})
    assert again == first
    [shown] = await hd.pending()
    assert (shown["kind"], shown["agent"], shown["requester"]) == ("tool_use", "alice", "alice")
    assert (shown["tool"], shown["input"], shown["always"]) == ("Bash", LS, False)
    assert shown["input_json"] == '{"command":"ls -la","description":"list"}'
    assert (await hd.host("approval", id=1))["input_json"] == shown["input_json"]


async def test_approved_once_allows_exactly_one_identical_call_then_it_asks_again(
    hd: Hived,
) -> None:
    asked = await hd.ask("alice", "Bash", LS)
    approved = await hd.host("approve", id=asked["approval"])
    assert (approved["state"], approved["always"]) == ("approved", False)
    told = await hd.inbox("alice")
    assert (told["kind"], told["body"]) == ("event", "approval_decided")
    payload = told["payload"]
    assert (payload["kind"], payload["tool"], payload["input"]) == ("tool_use", "Bash", LS)
    assert (payload["state"], payload["always"]) == ("approved", False)

    used = await hd.ask("alice", "Bash", LS)
    assert (used["decision"], used["approval"]) == ("allow", asked["approval"])
    assert "allowed this once" in used["message"]
    assert (await hd.host("approval", id=asked["approval"]))["state"] == "applied"
    later = await hd.ask("alice", "Bash", LS)
    assert later["decision"] == "pending" and later["approval"] != asked["approval"]
    with_used = await refused(hd.daemon.host_socket, "approve", id=asked["approval"])
    assert with_used.code == "already_decided" and "has been used" in with_used.message


async def test_an_input_one_byte_different_is_another_request(hd: Hived) -> None:
    asked = await hd.ask("alice", "Bash", {"command": "ls -la"})
    await hd.host("approve", id=asked["approval"])
    other = await hd.ask("alice", "Bash", {"command": "ls -lb"})
    assert other["decision"] == "pending" and other["approval"] != asked["approval"]
    # Another tool with the same input is another request too; the approved one still waits.
    elsewhere = await hd.ask("alice", "Write", {"command": "ls -la"})
    assert elsewhere["decision"] == "pending"
    assert (await hd.ask("alice", "Bash", {"command": "ls -la"}))["decision"] == "allow"


async def test_a_denial_reaches_the_agent_once_with_the_reason_then_it_may_ask_again(
    hd: Hived,
) -> None:
    asked = await hd.ask("alice", "Bash", {"command": "rm -rf /work"})
    denied = await hd.host("deny", id=asked["approval"], reason="not the whole workspace")
    assert denied["state"] == "denied"
    told = await hd.inbox("alice")
    assert told["payload"]["decision_reason"] == "not the whole workspace"
    assert told["payload"]["tool"] == "Bash"

    answer = await hd.ask("alice", "Bash", {"command": "rm -rf /work"})
    assert answer == {
        "decision": "deny",
        "approval": asked["approval"],
        "rule": None,
        "message": "not the whole workspace",
    }
    again = await hd.ask("alice", "Bash", {"command": "rm -rf /work"})
    assert again["decision"] == "pending" and again["approval"] == asked["approval"] + 1


async def test_approved_always_allows_every_identical_call_until_the_rule_is_revoked(
    hd: Hived,
) -> None:
    asked = await hd.ask("alice", "Bash", LS)
    approved = await hd.host("approve", id=asked["approval"], always=True)
    assert (approved["state"], approved["always"]) == ("applied", True)
    told = await hd.inbox("alice")
    assert (told["payload"]["state"], told["payload"]["always"]) == ("applied", True)
    [rule] = await hd.host("tool_rules")
    assert (rule["agent"], rule["tool"], rule["input"], rule["active"]) == (
        "alice",
        "Bash",
        LS,
        True,
    )
    assert rule["approval_id"] == asked["approval"]
    for _ in range(3):
        allowed = await hd.ask("alice", "Bash", LS)
        assert (allowed["decision"], allowed["rule"], allowed["approval"]) == (
            "allow",
            rule["id"],
            None,
        )
    assert (await hd.ask("alice", "Bash", {**LS, "x": 1}))["decision"] == "pending"
    assert await hd.host("tool_rules", agent="bob") == []

    revoked = await hd.host("revoke_rule", id=rule["id"])
    assert revoked["active"] is False and revoked["revoked_at"] is not None
    assert (await hd.ask("alice", "Bash", LS))["decision"] == "pending"
    assert (await refused(hd.daemon.host_socket, "revoke_rule", id=rule["id"])).code == (
        "already_revoked"
    )
    assert (await refused(hd.daemon.host_socket, "revoke_rule", id=99)).code == "unknown_rule"
    [listed] = await hd.host("tool_rules", agent="alice")
    assert listed["active"] is False  # revoked rules stay listed: who was allowed what


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        ({"tool": "Write", "input": {"c": "x" * 65529}}, "too_large", "the limit is 65536"),
        ({"tool": "Bash", "input": ["ls"]}, "bad_request", "must be an object"),
        ({"tool": "Bash"}, "bad_request", "must be an object"),
        ({"tool": "Bash", "input": {"n": float("nan")}}, "bad_request", "no canonical JSON"),
        ({"tool": "Bash", "input": {"s": "\ud800"}}, "bad_request", "no canonical JSON"),
        ({"tool": "", "input": {}}, "bad_request", "1-128 characters"),
        ({"tool": "B" * 129, "input": {}}, "bad_request", "1-128 characters"),
        ({"tool": 7, "input": {}}, "bad_request", "1-128 characters"),
        ({"tool": "Ba\nsh", "input": {}}, "bad_request", "no control characters"),
        ({"tool": "Bash", "input": {}, "as": "bob"}, "bad_request", "unexpected argument"),
        ({"tool": "Bash", "input": nested(33)}, "bad_request", "deeper than 32 levels"),
    ],
)
async def test_a_bad_ask_is_refused_clearly_and_nothing_is_stored(
    hd: Hived, args: dict[str, Any], code: str, says: str
) -> None:
    error = await refused(hd.socket("alice"), "tool_use", **args)
    assert (error.code, says in error.message) == (code, True), error.message
    assert await hd.pending() == []


async def test_an_input_of_exactly_64_kib_or_32_levels_is_accepted(hd: Hived) -> None:
    # {"c":"…"} is 8 bytes around the value.
    assert (await hd.ask("alice", "Write", {"c": "x" * 65528}))["decision"] == "pending"
    assert (await hd.ask("alice", "Write", nested(32)))["decision"] == "pending"


async def test_the_history_previews_a_decided_tool_use_and_the_approval_shows_it_whole(
    hd: Hived,
) -> None:
    big = {"content": "y" * 10_000}
    asked = await hd.ask("alice", "Write", big)
    await hd.host("deny", id=asked["approval"], reason="too big")
    [listed] = (await hd.host("approvals"))["decided"]
    assert (listed["input"], listed["input_truncated"]) == (None, True)
    assert len(listed["input_json"]) == 4096
    whole = await hd.host("approval", id=asked["approval"])
    assert whole["input"] == big and "input_truncated" not in whole


async def test_the_pending_cap_covers_tool_uses(hd: Hived) -> None:
    for i in range(MAX_PENDING_PER_REQUESTER):
        assert (await hd.ask("alice", "Bash", {"n": i}))["decision"] == "pending"
    over = await refused(hd.socket("alice"), "tool_use", tool="Bash", input={"n": "late"})
    assert over.code == "quota"
    # Asking again about one already waiting is no new request, so the cap does not bite.
    assert (await hd.ask("alice", "Bash", {"n": 0}))["approval"] == 1
    assert len(await hd.pending()) == MAX_PENDING_PER_REQUESTER
    await hd.host("deny", id=1, reason="no")
    assert (await hd.ask("alice", "Bash", {"n": "late"}))["decision"] == "pending"


async def test_agents_and_the_manager_ask_while_only_the_operator_decides(hd: Hived) -> None:
    await hd.host("agent_add", name="hm1nd")
    assert (await hd.ask("hm1nd", "Bash", LS))["decision"] == "pending"
    host = await refused(hd.daemon.host_socket, "tool_use", tool="Bash", input=LS)
    assert host.code == "forbidden"
    for agent in ("alice", "hm1nd"):
        for op, args in (("approve", {"id": 1}), ("tool_rules", {}), ("revoke_rule", {"id": 1})):
            assert (await refused(hd.socket(agent), op, **args)).code == "forbidden"
    # Each asks as itself: the manager's request is the manager's, alice's her own.
    await hd.ask("alice", "Bash", LS)
    assert [(a["agent"], a["requester"]) for a in await hd.pending()] == [
        ("hm1nd", "hm1nd"),
        ("alice", "alice"),
    ]


async def test_always_is_refused_for_other_kinds_and_changes_nothing(hd: Hived) -> None:
    await hd.host("agent_add", name="hm1nd")
    spawn = await call(hd.socket("hm1nd"), "request_spawn", name="carol", reason="a tester")
    error = await refused(hd.daemon.host_socket, "approve", id=spawn["id"], always=True)
    assert error.code == "bad_request" and "only a tool use" in error.message
    assert [a["state"] for a in await hd.pending()] == ["pending"]
    assert (await refused(hd.daemon.host_socket, "approve", id=1, always="yes")).code == (
        "bad_request"
    )


async def test_a_restart_between_the_request_and_the_decision_keeps_everything(
    short_dir: Path,
) -> None:
    state, run = short_dir / "state", short_dir / "run"
    hd = Hived(start_daemon(state, run))
    try:
        await hd.host("agent_add", name="alice")
        asked = await hd.ask("alice", "Bash", LS)
    finally:
        stop_daemon(hd.daemon)
    hd = Hived(start_daemon(state, run))
    try:
        assert await hd.ask("alice", "Bash", LS) == asked  # still waiting, not asked twice
        await hd.host("approve", id=asked["approval"])
    finally:
        stop_daemon(hd.daemon)
    hd = Hived(start_daemon(state, run))
    try:
        assert (await hd.inbox("alice"))["payload"]["id"] == asked["approval"]
        assert (await hd.ask("alice", "Bash", LS))["decision"] == "allow"
        assert (await hd.ask("alice", "Bash", LS))["decision"] == "pending"
    finally:
        stop_daemon(hd.daemon)


async def test_a_name_used_again_inherits_nothing_the_old_agent_was_granted(
    config: Config, hive: Hive
) -> None:
    await hive.add_agent("alice", None)
    socket = config.agent_socket("alice", manager=False)
    host = config.host_socket
    for tool_input, always in (({"a": 1}, True), ({"a": 2}, False)):
        asked = await call(socket, "tool_use", tool="Bash", input=tool_input)
        await call(host, "approve", id=asked["approval"], always=always)
    await hive.remove_agent("alice")
    await hive.add_agent("alice", None)
    for tool_input in ({"a": 1}, {"a": 2}):
        answer = await call(socket, "tool_use", tool="Bash", input=tool_input)
        assert answer["decision"] == "pending"
