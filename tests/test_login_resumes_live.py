"""The story of issue 11, with the keys in the core (issue 14), in real headless Chromium
through the dashboard's front door: a real harness (scripted engine, which wants a
credential as Claude Code behind the gateway does) on its web.sock, a real in-process
core and real sockets. The first message to an agent that is not logged in waits, the
page says ``offline (login)``, and the key saved there, which the core keeps, gets that
same message handled within moments, with no restart and the key in no page or history."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import async_playwright, expect

from hyperhive.agent.engine import EngineEvent, NotLoggedIn
from hyperhive.agent.fake_engine import Raise, ScriptedEngine, Step
from hyperhive.agent.harness import Harness
from hyperhive.agent.history import History
from hyperhive.agent.login import Credentials
from hyperhive.agent.settings import AgentSettings
from hyperhive.config import Config
from hyperhive.core.gateway.seams import Credential
from hyperhive.web import WebServer, create_agent_app
from hyperhive.web.unix_listen import bind_unix
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.dashboard import Swarm, live_swarm
from support.front_door import web_sock

WAIT_MS = 30_000  # a bound, not a target: chromium on a loaded 2-core machine takes seconds
KEY = "sk-ant-api03-pasted-on-the-page"


def settings_for(swarm: Swarm, name: str, base: Path) -> AgentSettings:
    socket = swarm.hive.socket_path(swarm.hive.registry.get(name))
    return AgentSettings(
        name=name,
        role="agent",
        socket=socket,
        state_dir=base / name / "state",
        claude_dir=base / name / "claude",
        listen="127.0.0.1",
        port=None,
        model_file=base / name / "state" / "hyperhive-model",
        web_socket_path=web_sock(swarm, name),
        api_socket=socket.parent / "api.sock",
    )


@contextlib.asynccontextmanager
async def behind_core(harness: Harness) -> AsyncIterator[None]:
    """The harness's page data on its web.sock, as ``hive-ag3nt serve`` serves it."""
    listener = bind_unix(harness.settings.web_socket)
    server = WebServer.for_app(create_agent_app(harness, behind_core=True), "localhost", 0)
    task = asyncio.create_task(server.serve(sockets=[listener.sock]))
    try:
        await asyncio.wait_for(server.ready.wait(), WAIT_MS / 1000)
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_MS / 1000)
        listener.close()


async def test_a_message_sent_before_the_login_is_answered_once_the_key_is_saved_on_the_page(
    config: Config, short_dir: Path
) -> None:
    async with live_swarm(config, env={}) as swarm:
        hive = swarm.hive
        await hive.add_agent("alice", None)
        settings = settings_for(swarm, "alice", short_dir)

        def script(prompt: str) -> list[Step]:
            if hive.credentials.for_agent("alice") is None:
                return [Raise(NotLoggedIn("no credential in the hive for alice"))]
            return [EngineEvent("assistant", {"text": "hello, operator: now I can answer"})]

        credentials = Credentials(settings.claude_dir, {})
        history = History(settings.history_db, secrets=credentials.secrets)
        engine = ScriptedEngine(script)
        harness = Harness(settings, engine, history, credentials)
        turns = asyncio.create_task(harness.run())
        errors: list[str] = []
        try:
            async with behind_core(harness), async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page()
                page.set_default_timeout(WAIT_MS)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(swarm.login_url)
                await page.goto(f"{swarm.base}agents/alice/")
                badge, log = page.locator("#badge"), page.locator("#log")
                await expect(badge).to_have_text(re.compile(r"^offline \(login\) \d+s$"))
                sent = await swarm.host("send", to="alice", body="my first words to you")
                await expect(log).to_contain_text(f"message #{sent['id']} is back in the queue")
                await expect(badge).to_have_text(re.compile(r"^offline \(login\) \d+s$"))
                await expect(page.locator("#login")).to_be_visible()
                assert hive.broker.pending() == {"alice": 1}

                await page.locator("#key").fill(KEY)
                await page.locator("#key-form button").click()
                await expect(log).to_contain_text("hello, operator: now I can answer")
                await expect(badge).to_have_text(re.compile(r"^idle \d+s$"))
                await expect(page.locator("#login")).to_be_hidden()
                assert KEY not in await page.content()
                await browser.close()
        finally:
            harness.stop()
            await asyncio.wait_for(turns, 10)
            history.close()
        assert hive.credentials.for_agent("alice") == Credential("api_key", KEY)
        row = hive.conn.execute(
            "SELECT delivered_at, attempts FROM messages WHERE id = ?", (sent["id"],)
        ).fetchone()
    assert errors == []
    # The same message, tried once before the login and once after it, counted never.
    assert len(engine.prompts) == 2 and "my first words to you" in engine.prompts[1]
    assert row[0] is not None and row[1] == 0
    assert KEY.encode() not in settings.history_db.read_bytes()
    # And the harness kept no key of its own.
    assert not settings.claude_dir.exists() or not any(settings.claude_dir.iterdir())
