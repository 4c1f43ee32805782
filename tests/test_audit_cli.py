"""``hive audit`` and ``hive audit verify`` against a real ``hive-c0re`` process: what the
operator does through the CLI is recorded as done via "cli", and an entry edited or removed
in the database file makes verify exit non-zero naming it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon
from hyperhive.client import Client, RemoteError


async def ask_tool(daemon: Daemon, agent: str, command: str) -> dict[str, Any]:
    socket = daemon.run_dir / "agents" / agent / "mcp.sock"
    async with await Client.connect(socket) as client:
        answer: dict[str, Any] = await client.call(
            "tool_use", tool="Bash", input={"command": command}
        )
        return answer


def entries(daemon: Daemon, *args: str) -> list[dict[str, Any]]:
    shown = daemon.cli("--json", "audit", *args)
    assert shown.returncode == 0, shown.stderr
    found: list[dict[str, Any]] = json.loads(shown.stdout)["entries"]
    return found


def tamper(daemon: Daemon, sql: str, *params: object) -> None:
    raw = sqlite3.connect(daemon.state_dir / "hive.db", isolation_level=None, timeout=10)
    try:
        raw.execute(sql, params)
    finally:
        raw.close()


@pytest.fixture
async def acted(daemon: Daemon) -> Daemon:
    """alice registered, her tool use approved and bob's denied through the CLI, a budget set."""
    assert daemon.cli("agents", "add", "alice").returncode == 0
    assert daemon.cli("agents", "add", "bob").returncode == 0
    asked = await ask_tool(daemon, "alice", "ls")
    assert daemon.cli("approve", str(asked["approval"])).returncode == 0
    other = await ask_tool(daemon, "bob", "rm -rf /")
    assert daemon.cli("deny", str(other["approval"]), "--reason", "no").returncode == 0
    return daemon


async def test_what_the_operator_does_through_the_cli_is_recorded_via_cli(acted: Daemon) -> None:
    found = [(e["actor"], e["via"], e["action"], e["agent"]) for e in entries(acted)]
    assert ("alice", "agent", "approval_requested", "alice") in found
    assert ("operator", "cli", "approval_approved", "alice") in found
    assert ("operator", "cli", "approval_denied", "bob") in found
    assert ("core", "core", "agent_added", "alice") in found
    assert ("operator", "cli", "agent_add", "alice") in found  # who asked, beside what happened
    assert {e["agent"] for e in entries(acted, "--agent", "bob")} == {"bob"}
    assert entries(acted, "--since", "2999-01-01") == []
    assert len(entries(acted, "--since", "1h", "--limit", "2")) == 2
    table = acted.cli("audit")
    assert table.returncode == 0, table.stderr
    assert "approval_denied" in table.stdout and "ACTOR" in table.stdout.splitlines()[0]
    verified = acted.cli("audit", "verify")
    assert verified.returncode == 0 and "ok" in verified.stdout, verified.stderr


async def test_a_budget_and_a_login_are_recorded_without_the_secret(acted: Daemon) -> None:
    assert acted.cli("budget", "--agent", "alice", "--usd-per-day", "5").returncode == 0
    async with await Client.connect(acted.host_socket) as client:
        await client.call("login_save", agent="alice", kind="api_key", value="sk-ant-SECRET-1")
    found = entries(acted, "--agent", "alice")
    budget = [e for e in found if e["action"] == "budget_set"]
    assert budget and (budget[-1]["via"], budget[-1]["detail"]["usd_per_day"]) == ("cli", 5.0)
    assert any(e["action"] == "login_saved" for e in found)
    raw = sqlite3.connect(acted.state_dir / "hive.db")
    try:
        text = json.dumps(raw.execute("SELECT * FROM audit_log").fetchall())
    finally:
        raw.close()
    assert "SECRET" not in text


async def test_an_entry_edited_in_the_database_makes_verify_fail_naming_it(
    acted: Daemon,
) -> None:
    approved = next(e for e in entries(acted) if e["action"] == "approval_approved")
    tamper(acted, "UPDATE audit_log SET actor = 'policy:x' WHERE id = ?", approved["id"])
    shown = acted.cli("audit", "verify")
    assert shown.returncode != 0
    assert f"entry #{approved['id']}" in shown.stderr and "edited" in shown.stderr


async def test_the_last_entry_deleted_makes_verify_fail_naming_it(acted: Daemon) -> None:
    last = entries(acted)[-1]["id"]
    tamper(acted, "DELETE FROM audit_log WHERE id = ?", last)
    shown = acted.cli("audit", "verify")
    assert shown.returncode != 0 and f"entry #{last}" in shown.stderr, shown.stderr


async def test_the_audit_op_refuses_bad_arguments_clearly(daemon: Daemon) -> None:
    shown = daemon.cli("audit", "--since", "yesterday-ish")
    assert shown.returncode != 0 and "--since" in shown.stderr
    async with await Client.connect(daemon.host_socket) as client:
        for bad in ({"limit": 0}, {"agent": "../x"}, {"since": "x"}, {"nope": 1}):
            with pytest.raises(RemoteError, match=r"argument|agent name|unexpected"):
                await client.call("audit", **bad)


def test_the_head_file_sits_beside_the_database_private(daemon: Daemon) -> None:
    assert daemon.cli("agents", "add", "alice").returncode == 0
    head = Path(daemon.state_dir) / "audit.head"
    assert head.stat().st_mode & 0o077 == 0
