"""hive.toml in a running daemon: read at start (a bad one stops it), reloaded on SIGHUP
and on ``hive config reload`` without dropping a connection, a bad reload keeping the
settings in force, the env winning over the file, and no secret ever shown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon, start_daemon, stop_daemon
from hyperhive.client import Client
from hyperhive.core.gateway.admission import Admission, AdmissionCore
from hyperhive.core.hive import Hive
from hyperhive.core.settings_source import SettingsSource
from support.wire import until_status

SECRET = "hunter2-webhook-key"
TOKEN = "tk_ntfy_token_value"
SERVE_FLAGS = ("--no-containers", "--no-dashboard")
WAIT = 30.0  # a bound, not a target
SINKS = f"""
[[notify.webhook]]
name = "ops"
url = "https://hooks.example/hive"
secret = "{SECRET}"

[[notify.ntfy]]
name = "phone"
url = "https://ntfy.sh/hive"
token_file = "ntfy-token"
"""
FIRST = "[budget]\nusd_per_day = 20.0\n[gateway]\nconcurrency = 8\n" + SINKS
SECOND = "[budget]\nusd_per_day = 7.5\n[gateway]\nconcurrency = 3\n" + SINKS


def write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def prepare(state: Path, text: str) -> Path:
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(state / "ntfy-token", TOKEN + "\n")
    write_private(state / "hive.toml", text)
    return state / "hive.toml"


@pytest.fixture
def configured(short_dir: Path) -> Iterator[Daemon]:
    prepare(short_dir / "state", FIRST)
    running = start_daemon(short_dir / "state", short_dir / "run")
    try:
        yield running
    finally:
        stop_daemon(running)


async def first_event(events: AsyncIterator[Any], kind: str) -> dict[str, Any]:
    async for event in events:
        if event.get("type") == kind:
            return dict(event)
    raise AssertionError(f"the stream ended before a {kind} event")


@contextlib.asynccontextmanager
async def tail_until(host_socket: Path, kind: str) -> AsyncIterator[asyncio.Task[dict[str, Any]]]:
    """A tail stream already subscribed, waiting for the first ``kind`` event."""
    async with await Client.connect(host_socket) as probe:
        before = (await probe.call("status"))["subscribers"]
    async with await Client.connect(host_socket) as client:
        task = asyncio.create_task(first_event(client.stream("tail"), kind))
        try:
            await until_status(host_socket, lambda s: s["subscribers"] == before + 1)
            yield task
        finally:
            task.cancel()


def wait_for_log(daemon: Daemon, needle: str) -> str:
    """The daemon's stderr up to the line holding ``needle``, bounded by WAIT."""
    stderr = daemon.proc.stderr
    assert stderr is not None
    seen, deadline = b"", time.monotonic() + WAIT
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        readable, _, _ = select.select([stderr], [], [], max(left, 0))
        if not readable:
            raise AssertionError(f"no {needle!r} in the daemon's log: {seen.decode()}")
        chunk = os.read(stderr.fileno(), 65536)
        if not chunk:
            raise AssertionError(f"the daemon's log ended first: {seen.decode()}")
        seen += chunk
    return seen.decode()


async def test_sighup_reloads_the_file_live_and_an_open_connection_still_answers(
    configured: Daemon,
) -> None:
    sock = configured.host_socket
    async with await Client.connect(sock) as before:
        shown = await before.call("config_show")
        assert shown["settings"]["budget"]["usd_per_day"] == 20.0
        assert (await before.call("usage"))["hive"]["budget"]["usd_per_day"] == 20.0
        async with tail_until(sock, "config_reloaded") as reloaded:
            write_private(configured.state_dir / "hive.toml", SECOND)
            configured.proc.send_signal(signal.SIGHUP)
            event = await asyncio.wait_for(reloaded, WAIT)
        assert event["changed"] == ["budget", "gateway"]
        # The connection opened before the reload answers, with the new settings.
        after = (await before.call("config_show"))["settings"]
        assert after["budget"]["usd_per_day"] == 7.5 and after["gateway"]["concurrency"] == 3
        # The meter checks against the hive budget in force now.
        assert (await before.call("usage"))["hive"]["budget"]["usd_per_day"] == 7.5
        # And the audit log says who reloaded what.
        logged = (await before.call("audit"))["entries"]
        reloads = [e for e in logged if e["action"] == "config_reloaded"]
        assert [(e["actor"], e["via"], e["detail"]["changed"]) for e in reloads] == [
            ("operator", "sighup", ["budget", "gateway"])
        ]
    assert configured.proc.poll() is None


async def test_config_reload_answers_what_changed_and_a_broken_file_keeps_the_old_settings(
    configured: Daemon,
) -> None:
    path = configured.state_dir / "hive.toml"
    write_private(path, SECOND)
    done = configured.cli("config", "reload")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"reloaded {path}: budget, gateway"
    async with await Client.connect(configured.host_socket) as client:
        logged = (await client.call("audit"))["entries"]
    assert [(e["actor"], e["via"]) for e in logged if e["action"] == "config_reloaded"] == [
        ("operator", "cli")
    ]
    write_private(path, "[gateway]\nconcurrency = 0\n")
    broken = configured.cli("config", "reload")
    assert broken.returncode == 1
    assert "hive.toml: gateway.concurrency: expected an integer from 1" in broken.stderr
    async with await Client.connect(configured.host_socket) as client:
        kept = (await client.call("config_show"))["settings"]
        assert kept["gateway"]["concurrency"] == 3 and kept["budget"]["usd_per_day"] == 7.5
        # SIGHUP with the broken file: logged, the daemon stays, the settings too.
        configured.proc.send_signal(signal.SIGHUP)
        log = wait_for_log(configured, "the settings in force are kept")
        assert "gateway.concurrency" in log
        assert (await client.call("config_show"))["settings"] == kept
    assert configured.proc.poll() is None


def test_config_show_never_shows_a_secret(configured: Daemon) -> None:
    for args in (("config", "show"), ("config", "show", "--json")):
        shown = configured.cli(*args)
        assert shown.returncode == 0, shown.stderr
        assert SECRET not in shown.stdout and TOKEN not in shown.stdout
        assert "<set>" in shown.stdout and "hooks.example" in shown.stdout
    text = configured.cli("config", "show").stdout
    assert f"# {configured.state_dir / 'hive.toml'}\n" in text and "usd_per_day = 20.0" in text
    assert '[[notify.webhook]]\nname = "ops"' in text and 'token = "<set>"' in text
    reload = configured.cli("config", "reload")
    assert SECRET not in reload.stdout + reload.stderr


async def test_the_env_wins_over_the_file_and_show_says_so(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = prepare(short_dir / "state", FIRST)
    monkeypatch.setenv("HYPERHIVE_BUDGET_USD_PER_DAY", "3")
    daemon = start_daemon(short_dir / "state", short_dir / "run")
    try:
        async with await Client.connect(daemon.host_socket) as client:
            shown = await client.call("config_show")
            assert shown["settings"]["budget"]["usd_per_day"] == 3.0
            assert shown["settings"]["gateway"]["concurrency"] == 8  # the file's
            assert shown["env"] == {"budget.usd_per_day": "HYPERHIVE_BUDGET_USD_PER_DAY"}
            write_private(path, SECOND)
            answer = await client.call("config_reload")
            assert answer["changed"] == ["gateway"]  # the file's budget is not in force
            assert (await client.call("usage"))["hive"]["budget"]["usd_per_day"] == 3.0
        assert (
            "usd_per_day = 3.0  # env HYPERHIVE_BUDGET_USD_PER_DAY"
            in daemon.cli("config", "show").stdout
        )
    finally:
        stop_daemon(daemon)


def test_a_config_flag_names_the_file(short_dir: Path) -> None:
    elsewhere = short_dir / "etc" / "hive.toml"
    elsewhere.parent.mkdir()
    write_private(elsewhere, "[budget]\ntokens_per_day = 1000\n")
    daemon = start_daemon(
        short_dir / "state", short_dir / "run", "--no-containers", "--config", str(elsewhere)
    )
    try:
        shown = daemon.cli("config", "show", "--json")
        assert f'"file": "{elsewhere}"' in shown.stdout
        assert '"tokens_per_day": 1000' in shown.stdout
    finally:
        stop_daemon(daemon)


@pytest.mark.parametrize(
    ("text", "mode", "says"),
    [
        ("[gateway]\nper_agent = 0\n", 0o600, "hive.toml: gateway.per_agent: expected an integer"),
        (SINKS, 0o644, "notify.webhook[0].secret is inline"),
    ],
)
def test_a_bad_file_stops_the_daemon_at_start_with_the_message(
    short_dir: Path, text: str, mode: int, says: str
) -> None:
    path = prepare(short_dir / "state", text)
    path.chmod(mode)
    env = {
        **os.environ,
        "HYPERHIVE_STATE_DIR": str(short_dir / "state"),
        "HYPERHIVE_RUN_DIR": str(short_dir / "run"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "hyperhive.daemons.c0re", "serve", *SERVE_FLAGS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert says in done.stderr and SECRET not in done.stderr


async def test_a_reload_gives_the_gateway_new_caps_and_the_meter_a_new_budget(
    hive: Hive,
) -> None:
    events: list[dict[str, Any]] = []
    hive.bus.observe(events.append)
    assert hive.gateway.admission.core.cap == hive.config.gateway_concurrency
    prepare(hive.config.state_dir, SECOND)
    changed = SettingsSource(hive.config).reload(hive.settings, hive.bus.publish)
    assert changed == ["budget", "gateway", "notify"]
    assert hive.gateway.admission.core.cap == 3
    assert hive.meter.budget(None).usd_per_day == 7.5
    assert {"type": "config_reloaded", "changed": changed}.items() <= events[-1].items()
    assert SECRET not in repr(events)


def test_new_caps_take_hold_for_new_grants_and_never_cut_a_running_request() -> None:
    core = AdmissionCore(cap=2)
    first, second, third = core.want("a"), core.want("b"), core.want("c")
    assert core.grant(0.0) == [first, second]
    core.set_caps(1, None)
    assert core.in_flight == 2  # both still running
    core.done("a")
    assert core.grant(0.0) == []  # one running: at the new cap
    core.done("b")
    assert core.grant(0.0) == [third]
    fourth, fifth = core.want("d"), core.want("d")
    core.set_caps(3, 1)
    assert core.grant(0.0) == [fourth]  # d at its own cap of one
    with pytest.raises(ValueError, match="caps must be positive"):
        core.set_caps(0, None)
    assert fifth not in core.grant(0.0)


async def test_a_higher_cap_lets_a_waiter_go_while_the_running_request_goes_on() -> None:
    admission = Admission(1)
    entered, asking, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def one(agent: str) -> None:
        asking.set()  # no await until slot() has queued it: the waiter is counted
        async with admission.slot(agent):
            entered.set()
            await release.wait()

    first = asyncio.create_task(one("a"))
    await asyncio.wait_for(entered.wait(), WAIT)
    entered.clear()
    asking.clear()
    second = asyncio.create_task(one("b"))
    await asyncio.wait_for(asking.wait(), WAIT)
    assert admission.core.waiting == 1 and not entered.is_set()
    admission.set_caps(2, None)
    await asyncio.wait_for(entered.wait(), WAIT)  # b is in, a still is
    assert admission.core.in_flight == 2 and not first.done()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), WAIT)
