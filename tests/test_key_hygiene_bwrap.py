"""Keys never enter a container (issue 14), with a real core on the bubblewrap backend, a
real harness running the real Claude Code CLI, and the fake Messages API as the upstream
the core's env names: an agent with no network answers through the core's gateway, and
the hive's key is in no process of its container (environ, argv) and in no file its uid
could read; a key saved on the agent's page is what its next request goes out with, and
is shown nowhere."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from hyperhive.config import Config
from hyperhive.core.containers import agent_paths
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.dashboard import Swarm, live_swarm
from support.fake_anthropic import FakeAnthropic, Turns, reply_text, reply_tool_use
from support.front_door import ready_line
from support.key_walk import container_pids, holding, process_texts, readable_files

WAIT = 60.0  # a bound, not a target: a loaded 2-core machine starts a CLI in seconds
WAIT_MS = int(WAIT * 1000)
OFFLINE = 'allow_send = ["operator"]\n\n[sandbox]\nnetwork = false\n'
PLACEHOLDER = "hyperhive-gateway"


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        fake.script = Turns(
            reply_tool_use("mcp__hive__send", {"to": "operator", "body": "pong"}),
            reply_text("answered"),
        )
        yield fake


def upstream_only(api: FakeAnthropic) -> dict[str, str]:
    """The fake's settings for the core, without its key."""
    return {k: v for k, v in api.env().items() if k != "ANTHROPIC_API_KEY"}


async def spawn_offline(swarm: Swarm, name: str) -> None:
    with ready_line(name) as ready:
        await swarm.host("spawn", name=name, config=OFFLINE)
        await asyncio.wait_for(ready.wait(), WAIT)


@contextlib.asynccontextmanager
async def answer_from(swarm: Swarm, name: str) -> AsyncIterator[asyncio.Task[dict[str, Any]]]:
    """A watch on the hive's bus, subscribed before the message that asks is sent: its
    ``pong`` to the operator, once ``name`` sent it."""
    subscription = swarm.hive.bus.subscribe()

    async def watch() -> dict[str, Any]:
        async for event in subscription:
            message = event.get("message") or {}
            if (message.get("from"), message.get("to")) == (name, "operator"):
                return dict(message)
        raise AssertionError("the bus ended")

    watching = asyncio.create_task(watch())
    try:
        yield watching
    finally:
        watching.cancel()
        swarm.hive.bus.unsubscribe(subscription)
        await asyncio.gather(watching, return_exceptions=True)


async def answered(watching: asyncio.Task[dict[str, Any]]) -> None:
    message = await asyncio.wait_for(watching, WAIT)
    assert message["body"] == "pong"


def assert_nowhere_inside(swarm: Swarm, name: str, key: str) -> None:
    """``key`` is in no process of ``name``'s container and no file its uid could read."""
    paths = agent_paths(swarm.hive.config, name)
    texts = process_texts(container_pids(paths.state))
    # bwrap, the harness, the CLI it runs (idle, still up): the walk found them all.
    assert any(f"ANTHROPIC_API_KEY={PLACEHOLDER}".encode() in t for t in texts.values())
    assert [pid for pid, text in texts.items() if key.encode() in text] == []
    uid = swarm.hive.uids.get(name)
    roots = [paths.state, paths.claude, paths.work, paths.socket_dir, swarm.hive.config.state_dir]
    readable = list(readable_files(roots, uid))
    assert paths.state / "history.db" in readable
    assert holding(readable, key) == []


async def test_an_agent_without_network_answers_through_the_gateway_and_sees_the_key_nowhere(
    config: Config, api: FakeAnthropic
) -> None:
    key = "sk-ant-api03-hive-" + secrets.token_hex(16)
    env = {**api.env(), "ANTHROPIC_API_KEY": key, "HYPERHIVE_LOG_LEVEL": "WARNING"}
    async with live_swarm(config, env=env) as swarm:
        await spawn_offline(swarm, "alice")
        async with answer_from(swarm, "alice") as answer:
            await swarm.host("send", to="alice", body="ping")
            await answered(answer)
        assert_nowhere_inside(swarm, "alice", key)
    assert api.turn_requests, "nothing reached the upstream"
    for request in api.turn_requests:
        # The hive's key went upstream, added by the core; the fake's record redacts it.
        assert request.auth == {"x-api-key": key}
        assert request.headers["x-api-key"] == "<redacted>"
        assert PLACEHOLDER not in request.auth.values()


async def test_a_key_saved_on_the_page_is_what_the_agents_next_request_goes_out_with(
    config: Config, api: FakeAnthropic
) -> None:
    key = "sk-ant-api03-page-" + secrets.token_hex(16)
    env = {**upstream_only(api), "HYPERHIVE_LOG_LEVEL": "WARNING"}
    errors: list[str] = []
    async with live_swarm(config, env=env) as swarm, async_playwright() as pw:
        await spawn_offline(swarm, "alice")
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(swarm.login_url)
        await page.goto(f"{swarm.base}agents/alice/")
        badge, log = page.locator("#badge"), page.locator("#log")
        await expect(badge).to_have_text(re.compile(r"^offline \(login\)"), timeout=WAIT_MS)
        async with answer_from(swarm, "alice") as answer:
            await swarm.host("send", to="alice", body="ping")
            await page.locator("#key").fill(key)
            await page.locator("#key-form button").click()
            await expect(page.locator("#login-msg")).to_have_text("API key saved for alice")
            await answered(answer)
        await expect(log).to_contain_text("answered", timeout=WAIT_MS)
        await page.reload()  # the whole history, as the page backfills it
        await expect(log).to_contain_text("answered", timeout=WAIT_MS)
        assert key not in await page.content()
        assert_nowhere_inside(swarm, "alice", key)
        stored = config.state_dir / "credentials" / "agents" / "alice.json"
        assert holding([stored], key) == [stored]  # the core has it; the agent cannot read it
        assert stored not in readable_files([config.state_dir], swarm.hive.uids.get("alice"))
        await browser.close()
    assert errors == []
    assert [r.auth for r in api.turn_requests] == [{"x-api-key": key}] * len(api.turn_requests)
    assert api.turn_requests
