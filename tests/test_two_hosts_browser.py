"""The dashboard of one host shows every host's agents, each with its host, and links
another host's agent to that host's front door (real cores on one real PostgreSQL
database, real headless Chromium)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.async_api import async_playwright, expect

from conftest import Daemon, stop_daemon
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.postgres import drop_database, fresh_database
from support.two_hosts import start_host as start_on_database

TOKEN = "two-hosts-operator-token-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_host(base: Path, name: str, url: str, port: int) -> Daemon:
    return start_on_database(base, name, url, "--listen", f"127.0.0.1:{port}", "--token", TOKEN)


@pytest.fixture
def two_hosts(short_dir: Path) -> Iterator[tuple[str, str]]:
    """alpha's and beta's front doors; alice on alpha, bob on beta."""
    url = fresh_database()
    ports = free_port(), free_port()
    a = start_host(short_dir, "alpha", url, ports[0])
    try:
        b = start_host(short_dir, "beta", url, ports[1])
        try:
            assert a.cli("agents", "add", "alice").returncode == 0
            assert b.cli("agents", "add", "bob").returncode == 0
            yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
        finally:
            stop_daemon(b)
    finally:
        stop_daemon(a)
        drop_database(url)


async def test_each_agent_row_names_its_host_and_another_hosts_agent_links_to_its_door(
    two_hosts: tuple[str, str],
) -> None:
    alpha, beta = two_hosts
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{alpha}/?{urlencode({'token': TOKEN})}")
            alice = page.locator('article.agent[data-agent="alice"]')
            bob = page.locator('article.agent[data-agent="bob"]')
            # bob's add reaches alpha as a signal; the row appears when it has.
            await expect(bob.locator(".host")).to_have_text("@beta")
            await expect(alice.locator(".host")).to_have_text("@alpha")
            assert await bob.locator("a.name").get_attribute("href") == f"{beta}/agents/bob/"
            assert await alice.locator("a.name").get_attribute("href") == "agents/alice/"
            await expect(bob.locator(".direct")).to_be_hidden()
            await expect(bob.locator(".actions")).to_be_hidden()
        finally:
            await browser.close()
