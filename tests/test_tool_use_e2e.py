"""ToolUse approvals outlast every process, with real parts only: a real core on the
``process`` backend (where Bash is ``ask`` by default), the real harness running the
real Claude Code CLI against the scripted fake Messages API, the operator in real
Chromium on the dashboard and on the real ``hive`` CLI.

One agent, one story: its Bash call is held as an approval with its exact input; the
harness is killed with -9 and comes back while the request waits; the operator
approves in Chromium; the woken agent's retry runs with exactly that input; a retry one
byte different is a new request; a denial reaches the model with its reason;
"approve always" lets the next identical call through unasked; revoking asks again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from conftest import Daemon, stop_daemon
from hyperhive.client import Client
from support.backend_probe import wait_gone
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.fake_anthropic import FakeAnthropic, RecordedRequest, Reply, Router, Turns
from support.procs import harness_pids
from support.wire import until_status
from test_agent_tools_e2e import bash, cli, daemon_on, finish
from test_operator_token import free_port

WAIT = 120.0
WAIT_MS = 60_000
ONE = "echo one > one.txt"
ONE_BYTE_OFF = "echo one > one.txT"
THREE = "echo three >> three.txt"


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


def told(seen: list[str], done: asyncio.Event) -> Callable[[RecordedRequest], Reply]:
    """A step that records what the model was woken with, then ends the turn."""

    def step(request: RecordedRequest) -> Reply:
        seen.append(request.last_user_text())
        return finish(done, "understood")(request)

    return step


class Story:
    def __init__(self, daemon: Daemon, page: Page, base: str) -> None:
        self.daemon, self.page, self.base = daemon, page, base
        self.work = daemon.state_dir / "agents" / "alice" / "work"

    async def pending(self) -> list[dict[str, Any]]:
        listed = json.loads(await cli(self.daemon, "approvals", "--json"))
        return [a for a in listed["pending"] if a["kind"] == "tool_use"]

    async def card(self, approval: int) -> Any:
        await self.page.goto(self.base)  # fresh: the queue as it is now
        await expect(self.page.locator("#link")).to_have_text("● live", timeout=WAIT_MS)
        card = self.page.locator(f'#approval-list [data-approval="{approval}"]')
        await expect(card).to_be_visible(timeout=WAIT_MS)
        return card

    async def kill_the_harness(self) -> None:
        # On the process backend a plain child, known by its state dir.
        pids = harness_pids("alice", self.daemon.state_dir / "agents" / "alice" / "state")
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        assert wait_gone(pids, timeout=20) == []
        # The lifecycle notices the crash and starts it again; back when it long-polls.
        await until_status(self.daemon.host_socket, lambda s: "alice" in s["waiting"])

    async def send(self, text: str) -> None:
        await cli(self.daemon, "send", "--to", "alice", text)


MARKS = ("held", "held_again", "denied", "held_three", "ran_three", "held_once_more")


async def test_a_tool_approval_outlasts_a_killed_harness_and_covers_exactly_its_input(
    api: FakeAnthropic, short_dir: Path
) -> None:
    marks = {name: asyncio.Event() for name in MARKS}
    woken_by: list[str] = []
    api.script = Router(
        alice=Turns(
            bash(ONE),  # held: waits for the operator
            finish(marks["held"], "waiting for the operator"),
            bash(ONE),  # woken by approval_decided, after the harness was killed
            bash(ONE_BYTE_OFF),  # not what was approved
            finish(marks["held_again"], "waiting again"),
            told(woken_by, marks["denied"]),
            bash(THREE),
            finish(marks["held_three"], "waiting for three"),
            bash(THREE),  # approved always
            bash(THREE),  # the rule: through without a new request
            finish(marks["ran_three"], "done three"),
            bash(THREE),  # the rule revoked: asks again
            finish(marks["held_once_more"], "waiting once more"),
        )
    )
    daemon = daemon_on(short_dir, api, "process", "--listen", f"127.0.0.1:{free_port()}")
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                page.set_default_timeout(WAIT_MS)
                login = (await cli(daemon, "dashboard-url")).strip()
                await page.goto(login)
                await play(Story(daemon, page, login.partition("?")[0]), marks, woken_by)
            finally:
                await browser.close()
    except BaseException:
        print(await asyncio.to_thread(daemon.cli, "logs", "alice", "--lines", "120"))
        raise
    finally:
        assert stop_daemon(daemon) == 0


async def play(story: Story, marks: dict[str, asyncio.Event], woken_by: list[str]) -> None:
    daemon = story.daemon
    await cli(daemon, "spawn", "alice")
    await story.send("please write one.txt")
    await asyncio.wait_for(marks["held"].wait(), WAIT)
    [first] = await story.pending()
    assert (first["tool"], json.loads(first["input_json"])) == (
        "Bash",
        {"command": ONE, "description": "work"},
    )
    assert not (story.work / "one.txt").exists()  # nothing ran

    # The turn ended and was acked; the harness dies while the request waits.
    await until_status(daemon.host_socket, lambda s: "alice" in s["waiting"])
    await story.kill_the_harness()
    assert [a["id"] for a in await story.pending()] == [first["id"]]

    card = await story.card(first["id"])
    await expect(card).to_contain_text(ONE)
    await card.get_by_role("button", name="◆ APPR0VE").click()
    await asyncio.wait_for(marks["held_again"].wait(), WAIT)
    assert (story.work / "one.txt").read_text() == "one\n"  # exactly the approved input ran
    [second] = await story.pending()
    assert second["id"] != first["id"]
    assert json.loads(second["input_json"])["command"] == ONE_BYTE_OFF
    assert not (story.work / "one.txT").exists()

    await cli(daemon, "deny", str(second["id"]), "--reason", "not that file")
    await asyncio.wait_for(marks["denied"].wait(), WAIT)
    assert "not that file" in woken_by[0]

    await story.send("now append to three.txt")
    await asyncio.wait_for(marks["held_three"].wait(), WAIT)
    [third] = await story.pending()
    card = await story.card(third["id"])
    await card.get_by_role("button", name="approve always").click()
    await asyncio.wait_for(marks["ran_three"].wait(), WAIT)
    assert (story.work / "three.txt").read_text() == "three\nthree\n"  # twice, asked once
    assert await story.pending() == []
    rules = json.loads(await cli(daemon, "rules", "alice", "--json"))
    live = [r for r in rules if not r.get("revoked_at")]
    assert [(r["tool"], r["input"]["command"]) for r in live] == [("Bash", THREE)]

    await cli(daemon, "revoke", str(live[0]["id"]))
    await story.send("once more")
    await asyncio.wait_for(marks["held_once_more"].wait(), WAIT)
    [fourth] = await story.pending()
    assert json.loads(fourth["input_json"])["command"] == THREE
    assert (story.work / "three.txt").read_text() == "three\nthree\n"
    async with await Client.connect(daemon.host_socket) as op:
        assert (await op.call("approval", id=first["id"]))["state"] == "applied"
