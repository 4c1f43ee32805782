"""Claude Code's own tools in an agent's container, with real parts only: a real
``hive-c0re``, the real harness running the real Claude Code CLI (bundled in
claude-agent-sdk) against the scripted fake Messages API, real bubblewrap; and
on the ``process`` backend, a Bash call that waits for the operator as a
ToolUse approval instead of running."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    PermissionResultDeny,
    SystemMessage,
)

from conftest import Daemon, start_daemon, stop_daemon
from hyperhive.tool_defaults import BUILTINS
from support.fake_anthropic import (
    FakeAnthropic,
    RecordedRequest,
    Reply,
    Router,
    ToolResult,
    Turns,
    reply_text,
    reply_tool_use,
)

WAIT = 120.0


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


def bash(command: str) -> Reply:
    return reply_tool_use("Bash", {"command": command, "description": "work"})


def finish(done: asyncio.Event, text: str) -> Callable[[RecordedRequest], Reply]:
    def step(request: RecordedRequest) -> Reply:
        done.set()
        return reply_text(text)

    return step


def daemon_on(base: Path, api: FakeAnthropic, backend: str, *extra: str) -> Daemon:
    assert "HYPERHIVE_ENGINE" not in os.environ  # the Claude engine, not the scripted one
    env_extra = {**api.env(), "HOME": str(base / "home")}
    (base / "home").mkdir(exist_ok=True)
    os.environ.update(env_extra)  # the daemon forwards ANTHROPIC_* / CLAUDE_CODE_* to agents
    try:
        return start_daemon(base / "state", base / "run", "--backend", backend, *extra)
    finally:
        for key in env_extra:
            os.environ.pop(key, None)


async def cli(daemon: Daemon, *args: str) -> str:
    # In a thread: the fake API answers the agents from this test's event loop.
    done = await asyncio.to_thread(daemon.cli, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def history_events(state: Path, kind: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(state / "history.db")) as db:
        rows = db.execute("SELECT data FROM events WHERE kind = ? ORDER BY id", (kind,))
        return [json.loads(data) for (data,) in rows]


def alice_results(api: FakeAnthropic) -> list[ToolResult]:
    mine = [r for r in api.turn_requests if "You are alice," in r.system_text]
    return [t for t in mine[-1].tool_results() if t.text != "Tool loaded."] if mine else []


async def test_the_bundled_cli_offers_exactly_the_built_in_tools_the_defaults_name(
    api: FakeAnthropic, short_dir: Path
) -> None:
    async def refuse(tool: str, tool_input: dict[str, Any], context: object) -> Any:
        return PermissionResultDeny(message="no")

    api.script = Turns(reply_text("hi"))
    env = {**api.env(), "HOME": str(short_dir), "CLAUDE_CONFIG_DIR": str(short_dir / "c")}
    options = ClaudeAgentOptions(
        env=env, cwd=short_dir, setting_sources=[], tools=list(BUILTINS), can_use_tool=refuse
    )
    offered: list[str] = []
    async with asyncio.timeout(WAIT), ClaudeSDKClient(options) as client:
        await client.query("hello")
        async for message in client.receive_response():
            if isinstance(message, SystemMessage) and message.subtype == "init":
                offered = list(message.data["tools"])
    # The init message still calls the Agent tool by its old name.
    assert sorted(offered) == sorted("Task" if t == "Agent" else t for t in BUILTINS)


async def test_an_isolated_agent_runs_bash_and_edits_files_in_its_workspace(
    api: FakeAnthropic, short_dir: Path
) -> None:
    done = asyncio.Event()
    api.script = Router(
        alice=Turns(
            bash("echo done $(hostname) > /work/proof.txt"),
            bash("ls / | wc -l > /work/count.txt"),
            bash("printf 'colour\\ncolour\\n' > /work/notes.txt"),
            reply_tool_use("Read", {"file_path": "/work/notes.txt"}),
            reply_tool_use(
                "Edit",
                {
                    "file_path": "/work/notes.txt",
                    "old_string": "colour",
                    "new_string": "color",
                    "replace_all": True,
                },
            ),
            finish(done, "all done"),
        )
    )
    daemon = daemon_on(short_dir, api, "bwrap")
    try:
        await cli(daemon, "spawn", "alice")
        await cli(daemon, "send", "--to", "alice", "please do the work")
        await asyncio.wait_for(done.wait(), WAIT)
        shown = json.loads(await cli(daemon, "agents", "alice", "--json"))
        text = await cli(daemon, "agents", "alice")
    except BaseException:
        print(await asyncio.to_thread(daemon.cli, "logs", "alice", "--lines", "80"))
        print("--- tool results:", alice_results(api))
        raise
    finally:
        assert stop_daemon(daemon) == 0
    work = short_dir / "state" / "agents" / "alice" / "work"
    assert (work / "proof.txt").read_text() == "done h-alice\n"
    assert int((work / "count.txt").read_text()) > 3
    assert (work / "notes.txt").read_text() == "color\ncolor\n"
    # The agent's page heard what the turn changed in /work.
    changed = history_events(short_dir / "state" / "agents" / "alice" / "state", "files_changed")
    assert [sorted(c["added"]) for c in changed] == [["count.txt", "notes.txt", "proof.txt"]]
    results = alice_results(api)
    assert len(results) == 5
    assert not [r for r in results if r.is_error or "denied" in r.text or "permission" in r.text]
    assert shown["tools"]["allow"] == list(BUILTINS)
    assert shown["tools"]["ask"] == [] and shown["tools"]["deny"] == []
    assert shown["tools"]["default"] == {"allow": True, "ask": True, "deny": True}
    assert "allow (default) Agent,Bash," in text


async def test_an_unisolated_agents_bash_call_waits_for_the_operator_and_runs_once_approved(
    api: FakeAnthropic, short_dir: Path
) -> None:
    asked, ran = asyncio.Event(), asyncio.Event()
    call = {"command": "echo done > proof.txt", "description": "work"}
    api.script = Router(
        alice=Turns(
            reply_tool_use("Bash", call),
            finish(asked, "waiting for the operator"),
            reply_tool_use("Bash", call),  # woken by approval_decided: the same call
            finish(ran, "done"),
        )
    )
    proof = short_dir / "state" / "agents" / "alice" / "work" / "proof.txt"
    daemon = daemon_on(short_dir, api, "process")
    try:
        await cli(daemon, "spawn", "alice")
        await cli(daemon, "send", "--to", "alice", "please do the work")
        await asyncio.wait_for(asked.wait(), WAIT)
        approvals = json.loads(await cli(daemon, "approvals", "--json"))
        shown = json.loads(await cli(daemon, "agents", "alice", "--json"))
        pending = [a for a in approvals["pending"] if a["kind"] == "tool_use"]
        assert [(a["agent"], a["tool"]) for a in pending] == [("alice", "Bash")]
        assert json.loads(pending[0]["input_json"]) == call
        (result,) = alice_results(api)
        assert result.is_error and f"approval #{pending[0]['id']}" in result.text
        assert "exactly the same input" in result.text
        assert not proof.exists()  # nothing ran
        assert "Bash" in shown["tools"]["ask"] and "Read" in shown["tools"]["allow"]

        await cli(daemon, "approve", str(pending[0]["id"]))
        await asyncio.wait_for(ran.wait(), WAIT)
        assert proof.read_text() == "done\n"
        first, retried = alice_results(api)  # one session: the refusal, then the run
        assert first == result and not retried.is_error
    except BaseException:
        print(await asyncio.to_thread(daemon.cli, "logs", "alice", "--lines", "80"))
        print("--- tool results:", alice_results(api))
        raise
    finally:
        assert stop_daemon(daemon) == 0
