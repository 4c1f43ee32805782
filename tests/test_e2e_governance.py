"""The whole governance flow with real processes: a real ``hive-c0re`` on the
bubblewrap backend, hm1nd and bob as real harnesses running the real Claude
Code CLI in their containers (hm1nd edits and commits bob's config with its own
Read/Write/Bash tools), the operator on the real ``hive`` CLI, and the scripted
fake Messages API in the test process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon, start_daemon, stop_daemon
from hyperhive.client import Client
from support.fake_anthropic import (
    FakeAnthropic,
    RecordedRequest,
    Reply,
    Router,
    Turns,
    reply_text,
    reply_tool_use,
)

WAIT = 120.0


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


class Tail:
    """The core's event stream, read from the start of the test."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._events = client.stream("tail")

    async def until(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            async for event in self._events:
                if check(event):
                    return dict(event)
        raise AssertionError("the tail ended")

    async def message(self, sender: str, to: str) -> dict[str, Any]:
        event = await self.until(
            lambda e: (
                e.get("type") == "message"
                and (e["message"]["from"], e["message"]["to"]) == (sender, to)
            )
        )
        return dict(event["message"])


def git(cwd: Path, *args: str) -> str:
    # The proposed repo belongs to the manager's uid; the test reads it as root.
    done = subprocess.run(
        ["git", "-c", "safe.directory=*", *args],
        cwd=cwd, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def woken_by(text: str) -> Callable[[RecordedRequest], bool]:
    return lambda r: "You are hm1nd," in r.system_text and text in r.last_user_text()


async def test_the_manager_grows_and_reconfigures_the_swarm_only_with_approval(
    api: FakeAnthropic, short_dir: Path
) -> None:
    proposal: dict[str, str] = {}
    host_repo = short_dir / "state" / "proposed" / "bob" / "config"
    repo = "/agents/bob/config"  # the same repo, as hm1nd sees it in its container

    def request_the_commit(request: RecordedRequest) -> Reply:
        # hm1nd's own Bash step has committed by now; ask for exactly that commit.
        proposal["sha"] = git(host_repo, "rev-parse", "HEAD")
        return reply_tool_use(
            "mcp__hive__request_apply_commit",
            {"name": "bob", "sha": proposal["sha"], "reason": "bob becomes a reviewer"},
        )

    later_committed = asyncio.Event()

    def write_a_later_edit(request: RecordedRequest) -> Reply:
        # hm1nd keeps working after asking: this later commit must not be applied.
        current = (host_repo / "agent.toml").read_text()
        return reply_tool_use(
            "Write",
            {
                "file_path": f"{repo}/agent.toml",
                "content": current.replace("reviewer", "everything"),
            },
        )

    def note_the_later_commit(request: RecordedRequest) -> Reply:
        proposal["later"] = git(host_repo, "rev-parse", "HEAD")
        later_committed.set()
        return reply_text("asked for the config change, and kept working")

    def write_the_role(request: RecordedRequest) -> Reply:
        current = (host_repo / "agent.toml").read_text()
        return reply_tool_use(
            "Write",
            {"file_path": f"{repo}/agent.toml", "content": 'role = "reviewer"\n' + current},
        )

    def request_the_later_commit(request: RecordedRequest) -> Reply:
        return reply_tool_use(
            "mcp__hive__request_apply_commit",
            {"name": "bob", "sha": proposal["later"], "reason": "let bob message everyone"},
        )

    api.script = Router(
        hm1nd=Turns(
            reply_tool_use(
                "mcp__hive__request_spawn", {"name": "bob", "reason": "we need a reviewer"}
            ),
            reply_text("asked the operator for bob"),
            reply_tool_use("mcp__hive__send", {"to": "bob", "body": "welcome, bob"}),
            reply_text("greeted bob"),
            reply_text("bob is in"),
            reply_tool_use("Read", {"file_path": f"{repo}/agent.toml"}),
            write_the_role,
            reply_tool_use(
                "Bash",
                {
                    "command": f"git -C {repo} commit -qam 'bob becomes a reviewer'",
                    "description": "commit the config change",
                },
            ),
            request_the_commit,
            write_a_later_edit,
            reply_tool_use(
                "Bash",
                {"command": f"git -C {repo} commit -qam 'a later edit'", "description": "commit"},
            ),
            note_the_later_commit,
            reply_text("the change is applied"),
            request_the_later_commit,
            reply_text("asked again"),
            reply_text("denied; fine"),
        ),
        bob=Turns(
            reply_tool_use("mcp__hive__send", {"to": "hm1nd", "body": "hello manager"}),
            reply_text("answered"),
        ),
    )
    env_extra = {**api.env(), "HOME": str(short_dir / "home")}
    os.environ.update(env_extra)  # the daemon forwards ANTHROPIC_* / CLAUDE_CODE_* to agents
    try:
        daemon = start_daemon(short_dir / "state", short_dir / "run", "--backend", "bwrap")
    finally:
        for key in env_extra:
            os.environ.pop(key, None)
    try:
        await run_flow(daemon, api, proposal, later_committed)
    except BaseException:
        # The containers' output is the only witness of what went wrong inside.
        for name in ("hm1nd", "bob"):
            print(f"--- hive logs {name}\n{daemon.cli('logs', name, '--lines', '80').stdout}")
        print("--- fake API requests:", [r.last_user_text()[-120:] for r in api.requests])
        print("--- tool results:", [r.tool_results() for r in api.requests])
        raise
    finally:
        assert stop_daemon(daemon) == 0


async def run_flow(
    daemon: Daemon, api: FakeAnthropic, proposal: dict[str, str], later_committed: asyncio.Event
) -> None:
    async with await Client.connect(daemon.host_socket) as watcher:
        tail = Tail(watcher)
        if not _running(daemon, "hm1nd"):
            await tail.until(
                lambda e: (
                    e.get("type") == "agent_state"
                    and e.get("agent") == "hm1nd"
                    and e.get("state") == "running"
                )
            )
        sent = daemon.cli("send", "--to", "hm1nd", "we need a reviewer on this team")
        assert sent.returncode == 0, sent.stderr

        requested = await tail.until(lambda e: e.get("type") == "approval_requested")
        spawn_id = requested["approval"]["id"]
        assert requested["approval"]["kind"] == "spawn"
        assert not _running(daemon, "bob")  # nothing happens before the operator decides
        approved = daemon.cli("approve", str(spawn_id))
        assert approved.returncode == 0 and "applied" in approved.stdout, approved.stderr

        welcome = await tail.message("hm1nd", "bob")
        assert welcome["body"] == "welcome, bob"
        reply = await tail.message("bob", "hm1nd")
        assert reply["body"] == "hello manager"
        assert _running(daemon, "bob")

        repo = daemon.state_dir / "proposed" / "bob" / "config"
        toml = repo / "agent.toml"
        daemon.cli("send", "--to", "hm1nd", "please make bob a reviewer")
        asked = await tail.until(lambda e: e.get("type") == "approval_requested")
        assert asked["approval"]["sha"] == proposal["sha"]
        made = git(repo, "log", "-1", "--format=%an %s", proposal["sha"])
        assert made == "hm1nd bob becomes a reviewer"  # hm1nd's own commit
        await asyncio.wait_for(later_committed.wait(), WAIT)
        assert proposal["later"] != proposal["sha"]
        assert 'role = "everything"' in toml.read_text()

        shown = daemon.cli("approval", str(asked["approval"]["id"]))
        assert '+role = "reviewer"' in shown.stdout and "everything" not in shown.stdout
        applied = daemon.cli("approve", str(asked["approval"]["id"]))
        assert "applied" in applied.stdout, applied.stderr + applied.stdout
        applied_dir = daemon.state_dir / "applied" / "bob"
        assert git(applied_dir, "rev-parse", "HEAD^{tree}") == git(
            repo, "rev-parse", f"{proposal['sha']}^{{tree}}"
        )
        await tail.until(
            lambda e: (
                e.get("type") == "agent_state"
                and e.get("agent") == "bob"
                and e.get("state") == "running"
                and e.get("config_sha") == git(applied_dir, "rev-parse", "HEAD")
            )
        )
        await asyncio.wait_for(api.wait_for_request(woken_by('"state": "applied"')), WAIT)

        daemon.cli("send", "--to", "hm1nd", "also let bob message everyone")
        later = await tail.until(
            lambda e: (
                e.get("type") == "approval_requested" and e["approval"]["sha"] == proposal["later"]
            )
        )
        before = git(applied_dir, "rev-parse", "HEAD")
        denied = daemon.cli("deny", str(later["approval"]["id"]), "--reason", "not now")
        assert "denied" in denied.stdout, denied.stderr
        told = await asyncio.wait_for(api.wait_for_request(woken_by('"state": "denied"')), WAIT)
        assert "not now" in told.last_user_text()
        assert git(applied_dir, "rev-parse", "HEAD") == before

    log = json.loads(daemon.cli("messages", "--json", "--limit", "100").stdout)
    pairs = [(m["from"], m["to"]) for m in log if m["kind"] == "message"]
    assert ("hm1nd", "bob") in pairs and ("bob", "hm1nd") in pairs


def _running(daemon: Daemon, name: str) -> bool:
    listed = json.loads(daemon.cli("agents", "--json").stdout)
    found = [a for a in listed if a["name"] == name]
    return bool(found and found[0]["container"] and found[0]["container"]["state"] == "running")
