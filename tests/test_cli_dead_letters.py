"""``hive dead``, ``hive retry``, ``hive drop`` against a real ``hive-c0re`` process; the
test fails the message as the agent would, on the agent's own socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conftest import Daemon
from hyperhive.client import Client

pytestmark = pytest.mark.usefixtures("both_stores")

WAIT = 10.0


async def fail_three_times(socket: Path, mid: int, reason: str) -> None:
    async with await Client.connect(socket) as me:
        for _ in range(3):
            got = await me.call("recv", wait=WAIT, lease=True)
            assert got["message"]["id"] == mid
            await me.call("fail", lease=got["lease"], reason=reason)
        assert await me.call("recv", wait=0) is None


async def receive(socket: Path) -> int | None:
    async with await Client.connect(socket) as me:
        got = await me.call("recv", wait=0)
    return None if got is None else int(got["message"]["id"])


def test_the_operator_lists_retries_and_drops_dead_letters_from_the_cli(daemon: Daemon) -> None:
    assert daemon.cli("agents", "add", "alice").returncode == 0
    assert daemon.cli("agents", "add", "bob").returncode == 0
    alice = daemon.run_dir / "agents" / "alice" / "mcp.sock"
    assert daemon.cli("dead").stdout.strip() == "no dead letters"
    sent = json.loads(daemon.cli("send", "--to", "alice", "--json", "a \x1b[2J poison").stdout)
    mid = sent["id"]
    asyncio.run(fail_three_times(alice, mid, "the engine chokes\non it"))

    shown = daemon.cli("dead")
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()
    assert header.split() == ["ID", "DIED", "FROM", "TO", "TRIES", "REASON", "BODY"]
    assert row.startswith(str(mid)) and "operator  alice" in row and "  3  " in row
    assert "the engine chokes\\non it" in row and "a \\x1b[2J poison" in row  # escaped
    assert daemon.cli("dead", "bob").stdout.strip() == "no dead letters"
    listed = json.loads(daemon.cli("dead", "alice", "--json").stdout)
    assert [(d["id"], d["attempts"]) for d in listed] == [(mid, 3)]

    retried = daemon.cli("retry", str(mid))
    assert retried.returncode == 0 and retried.stdout.strip() == f"#{mid} is back in alice's queue"
    assert daemon.cli("dead").stdout.strip() == "no dead letters"
    asyncio.run(fail_three_times(alice, mid, "still choking"))

    dropped = daemon.cli("drop", str(mid))
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.strip() == f"#{mid} to alice dropped for good by operator"
    assert daemon.cli("dead").stdout.strip() == "no dead letters"
    assert asyncio.run(receive(alice)) is None

    again = daemon.cli("drop", str(mid))
    assert again.returncode == 1 and f"message #{mid} is not a dead letter" in again.stderr
    missing = daemon.cli("retry", "999999")
    assert missing.returncode == 1 and "no message with id 999999" in missing.stderr
