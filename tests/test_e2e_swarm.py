"""The whole chain with real processes: a real ``hive-c0re``, two real
``hive-ag3nt serve`` harnesses running the real Claude Code CLI, and the
scripted fake Messages API in the test process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Daemon, start_daemon, stop_daemon
from hyperhive.client import Client
from support.fake_anthropic import (
    FakeAnthropic,
    HangReply,
    Router,
    Turns,
    reply_text,
    reply_tool_use,
)
from support.wire import until_status

WAIT = 90.0
FAKE_KEY = "sk-ant-fake-key"


@dataclass
class AgentProcess:
    name: str
    proc: asyncio.subprocess.Process
    port: int
    state: Path

    @property
    def history(self) -> Path:
        return self.state / "history.db"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def swarm(short_dir: Path) -> Iterator[Daemon]:
    daemon = start_daemon(short_dir / "state", short_dir / "run")
    for args in (("alice", "bob,operator"), ("bob", "alice")):
        added = daemon.cli("agents", "add", args[0], "--allow-send", args[1])
        assert added.returncode == 0, added.stderr
    try:
        yield daemon
    finally:
        stop_daemon(daemon)


async def start_agent(
    daemon: Daemon, api: FakeAnthropic, name: str, base: Path, port: int | None = None
) -> AgentProcess:
    home = base / name / "home"
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    state = base / name / "state"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))},
        **api.env(),
        "HOME": str(home),
        "PYTHONUNBUFFERED": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hyperhive.daemons.ag3nt", "serve", "--engine", "claude",
        "--name", name, "--socket", str(daemon.run_dir / "agents" / name / "mcp.sock"),
        "--state", str(state), "--claude-dir", str(base / name / "claude"),
        "--port", str(port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert b"ready" in line, line
    return AgentProcess(name, proc, port, state)


async def stop_agent(agent: AgentProcess) -> bytes:
    if agent.proc.returncode is None:
        agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.stderr is not None
    err = await asyncio.wait_for(agent.proc.stderr.read(), 30)
    await asyncio.wait_for(agent.proc.wait(), 30)
    return err


async def wait_for_message(host: Path, sender: str, to: str) -> dict[str, Any]:
    async with await Client.connect(host) as op, asyncio.timeout(WAIT):
        async for event in op.stream("tail"):
            message = event.get("message") or {}
            if (message.get("from"), message.get("to")) == (sender, to):
                return dict(message)
    raise AssertionError("tail ended")


def history_rows(db: Path) -> list[tuple[str, dict[str, Any]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT kind, data FROM events ORDER BY id").fetchall()
    return [(kind, json.loads(data)) for kind, data in rows]


async def test_operator_to_alice_to_bob_and_back(
    swarm: Daemon, api: FakeAnthropic, short_dir: Path
) -> None:
    api.script = Router(
        alice=Turns(
            reply_tool_use("mcp__hive__send", {"to": "bob", "body": "ping from alice"}),
            reply_text("asked bob"),
            reply_text("bob answered, done"),
        ),
        bob=Turns(
            reply_tool_use("mcp__hive__send", {"to": "alice", "body": "pong from bob"}),
            reply_text("answered alice"),
        ),
    )
    alice = await start_agent(swarm, api, "alice", short_dir)
    bob = await start_agent(swarm, api, "bob", short_dir)
    try:
        watcher = asyncio.create_task(wait_for_message(swarm.host_socket, "bob", "alice"))
        async with await Client.connect(swarm.host_socket) as op:
            await op.call("send", to="alice", body="say hi to bob")
        reply = await watcher
        assert reply["body"] == "pong from bob"
        # The SSE stream of alice's page carries her history and never the key.
        url = f"http://127.0.0.1:{alice.port}/events?after=0"
        # Run by hand, the harness keeps its own page key in its state dir.
        key = (alice.state / "page-key").read_text().strip()
        bearer = {"Authorization": f"Bearer {key}"}
        async with (
            httpx.AsyncClient(timeout=WAIT, headers=bearer) as http,
            http.stream("GET", url) as sse,
        ):
            seen = ""
            async for chunk in sse.aiter_text():
                seen += chunk
                if "mcp__hive__send" in seen:
                    break
        assert FAKE_KEY not in seen
        await asyncio.wait_for(
            api.wait_for_request(
                lambda r: (
                    "You are alice," in r.system_text and "pong from bob" in r.last_user_text()
                )
            ),
            WAIT,
        )
    finally:
        logs = [await stop_agent(alice), await stop_agent(bob)]

    log = json.loads(swarm.cli("messages", "--json").stdout)
    assert [(m["from"], m["to"], m["body"]) for m in log] == [
        ("operator", "alice", "say hi to bob"),
        ("alice", "bob", "ping from alice"),
        ("bob", "alice", "pong from bob"),
    ]
    alice_rows, bob_rows = history_rows(alice.history), history_rows(bob.history)
    assert ("tool_use", "mcp__hive__send", "bob") in [
        (k, d.get("name"), d.get("input", {}).get("to")) for k, d in alice_rows
    ]
    assert ("tool_use", "mcp__hive__send", "alice") in [
        (k, d.get("name"), d.get("input", {}).get("to")) for k, d in bob_rows
    ]
    for secret_holder in (alice.history.read_bytes(), bob.history.read_bytes(), *logs):
        assert FAKE_KEY.encode() not in secret_holder


async def test_a_harness_killed_mid_turn_gets_its_unacked_message_again(
    swarm: Daemon, api: FakeAnthropic, short_dir: Path
) -> None:
    hang = HangReply()
    api.script = Router(alice=Turns(hang, reply_text("finished after restart")))
    alice = await start_agent(swarm, api, "alice", short_dir)
    async with await Client.connect(swarm.host_socket) as op:
        sent = await op.call("send", to="alice", body="a job that survives a crash")
    await asyncio.wait_for(hang.started.wait(), WAIT)
    os.killpg(alice.proc.pid, signal.SIGKILL)  # the harness and its CLI child
    await asyncio.wait_for(alice.proc.wait(), 30)

    again = await start_agent(swarm, api, "alice", short_dir, port=alice.port)
    try:
        request = await asyncio.wait_for(
            api.wait_for_request(
                lambda r: f"#{sent['id']}" in r.last_user_text() and r is not api.requests[0]
            ),
            WAIT,
        )
        assert "a job that survives a crash" in request.last_user_text()
        # Acked once the second turn finished: nothing is pending for alice.
        await until_status(swarm.host_socket, lambda s: "alice" not in s["pending"])
    finally:
        await stop_agent(again)
    with sqlite3.connect(swarm.state_dir / "hive.db") as conn:
        delivered = conn.execute(
            "SELECT delivered_at FROM messages WHERE id = ?", (sent["id"],)
        ).fetchone()
    assert delivered[0] is not None
