"""A real ``hive-c0re serve`` process, driven through the real ``hive`` CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import Daemon, start_daemon, stop_daemon
from hyperhive.agent.settings import port_for
from hyperhive.client import Client
from support.wire import until_status


def test_the_cli_registers_agents_sends_and_lists_messages(daemon: Daemon) -> None:
    added = daemon.cli("agents", "add", "alice", "--allow-send", "hm1nd,bob")
    assert added.returncode == 0, added.stderr
    assert "added alice" in added.stdout
    assert (daemon.run_dir / "agents" / "alice" / "mcp.sock").is_socket()

    listed = json.loads(daemon.cli("--json", "agents").stdout)
    assert [(a["name"], a["allow_send"]) for a in listed] == [("alice", ["hm1nd", "bob"])]
    assert listed[0]["port"] == port_for("alice")  # the page port the core assigned
    table = daemon.cli("agents").stdout
    assert table.splitlines()[0].split() == [
        "NAME",
        "ROLE",
        "STATE",
        "PORT",
        "ALLOW_SEND",
        "PENDING",
        "SOCKET",
    ]
    assert table.splitlines()[1].split()[3] == str(port_for("alice"))

    sent = daemon.cli("send", "--to", "alice", "hello alice")
    assert sent.returncode == 0 and "sent #1 to alice" in sent.stdout
    from_stdin = daemon.cli("send", "--to", "alice", "-", stdin="from a pipe\n")
    assert from_stdin.returncode == 0, from_stdin.stderr

    log = json.loads(daemon.cli("messages", "--agent", "alice", "--json").stdout)
    assert [(m["from"], m["to"], m["body"]) for m in log] == [
        ("operator", "alice", "hello alice"),
        ("operator", "alice", "from a pipe\n"),
    ]
    assert "hello alice" in daemon.cli("messages", "--limit", "1", "--agent", "alice").stdout or (
        "from a pipe" in daemon.cli("messages", "--limit", "1").stdout
    )

    status = json.loads(daemon.cli("status", "--json").stdout)
    assert status["agents"] == 1 and status["pending"] == {"alice": 2}
    assert "pending alice=2" in daemon.cli("status").stdout


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("send", "--to", "nobody", "hi"), "no participant named 'nobody'"),
        (("send", "--to", "operator", ""), "empty"),
        (("agents", "add", "Bad_Name"), "invalid agent name"),
        (("agents", "add", "bob", "--allow-send", "NOPE"), "invalid agent name"),
        (("messages", "--agent", "ghost"), "no agent named 'ghost'"),
        (("messages", "--limit", "0"), "between 1 and 1000"),
    ],
)
def test_cli_failures_exit_non_zero_with_the_core_s_message(
    daemon: Daemon, args: tuple[str, ...], error: str
) -> None:
    result = daemon.cli(*args)
    assert result.returncode == 1
    assert error in result.stderr
    assert json.loads(daemon.cli("--json", "agents").stdout) == []


def test_the_cli_says_clearly_when_no_daemon_is_running(short_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hyperhive.cli.main", "--run-dir", str(short_dir), "status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach hive-c0re" in result.stderr


def test_tail_streams_messages_as_they_are_sent(daemon: Daemon) -> None:
    daemon.cli("agents", "add", "alice")
    tail = subprocess.Popen(
        [sys.executable, "-m", "hyperhive.cli.main", "tail", "--json"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        asyncio.run(until_status(daemon.host_socket, lambda s: s["subscribers"] == 1))
        daemon.cli("send", "--to", "alice", "live")
        assert tail.stdout is not None
        event = json.loads(tail.stdout.readline())
        assert event["type"] == "message" and event["message"]["body"] == "live"
    finally:
        tail.terminate()
        tail.wait(timeout=10)


def test_kill_9_after_an_answered_send_loses_nothing(short_dir: Path) -> None:
    state, run = short_dir / "state", short_dir / "run"
    first = start_daemon(state, run)
    first.cli("agents", "add", "alice")
    for i in range(50):
        assert first.cli("send", "--to", "alice", f"durable {i}").returncode == 0
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)

    second = start_daemon(state, run)  # also proves the stale socket files are reclaimed
    try:
        bodies = asyncio.run(_drain(run / "agents" / "alice" / "mcp.sock"))
    finally:
        assert stop_daemon(second) == 0
    assert bodies == [f"durable {i}" for i in range(50)]


async def _drain(path: Path) -> list[str]:
    async with await Client.connect(path) as alice:
        bodies = []
        while (got := await alice.call("recv", wait=0)) is not None:
            bodies.append(got["message"]["body"])
        return bodies


def test_sigterm_answers_open_long_polls_and_exits_zero(daemon: Daemon) -> None:
    daemon.cli("agents", "add", "alice")

    async def poll_then_signal() -> object:
        async with await Client.connect(daemon.run_dir / "agents" / "alice" / "mcp.sock") as c:
            assert await c.call("ping")
            waiting = asyncio.create_task(c.call("recv", wait=600))
            await until_status(daemon.host_socket, lambda s: s["waiting"] == {"alice": 1})
            daemon.proc.send_signal(signal.SIGTERM)
            return await asyncio.wait_for(waiting, 15)

    assert asyncio.run(poll_then_signal()) is None
    assert daemon.proc.wait(timeout=15) == 0
    assert not daemon.host_socket.exists()


def test_a_second_signal_forces_exit_when_the_drain_is_stuck(daemon: Daemon) -> None:
    daemon.cli("agents", "add", "alice")
    # JSON escapes each control character to six bytes: one answer is most of a megabyte.
    daemon.cli("send", "--to", "alice", "-", stdin="\x01" * 150_000)
    # A client that asks for megabytes and never reads keeps a request in
    # flight: the drain waits for it, so only the second signal ends the daemon.
    stuck = socket.socket(socket.AF_UNIX)
    stuck.connect(str(daemon.host_socket))
    stuck.settimeout(10)
    stuck.sendall(b'{"id":1,"op":"message","args":{"id":1}}\n' * 50)
    assert stuck.recv(1) == b"{"  # the core is answering, and will block writing
    try:
        daemon.proc.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            daemon.proc.wait(timeout=1.0)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=10) == 1
    finally:
        stuck.close()


def test_a_second_daemon_on_the_same_run_dir_refuses_to_start(daemon: Daemon) -> None:
    other = subprocess.run(
        [
            sys.executable,
            "-m",
            "hyperhive.daemons.c0re",
            "serve",
            "--no-containers",
            "--no-dashboard",
        ],
        env={**daemon.env, "HYPERHIVE_STATE_DIR": str(daemon.state_dir.parent / "other")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert other.returncode == 2
    assert "another hive-c0re running" in other.stderr
    assert daemon.cli("status").returncode == 0


def test_a_corrupt_database_stops_the_start_with_a_clear_error(short_dir: Path) -> None:
    state = short_dir / "state"
    state.mkdir()
    (state / "hive.db").write_bytes(b"definitely not sqlite" * 100)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hyperhive.daemons.c0re",
            "serve",
            "--state-dir",
            str(state),
            "--run-dir",
            str(short_dir / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to touch it" in result.stderr
    assert (state / "hive.db").read_bytes() == b"definitely not sqlite" * 100


def test_the_daemon_serves_the_dashboard_on_its_listen_address(short_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = start_daemon(
        short_dir / "state", short_dir / "run", "--no-containers", "--listen", f"127.0.0.1:{port}"
    )
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 401
        url = daemon.cli("dashboard-url").stdout.strip()  # the token, always there
        with httpx.Client(timeout=10) as browser:
            assert browser.get(url).status_code == 303
            page = browser.get(f"http://127.0.0.1:{port}/")
            assert page.status_code == 200 and "hyperhive" in page.text
    finally:
        assert stop_daemon(daemon) == 0


@pytest.mark.parametrize("listen", ["127.0.0.1:7999", "0.0.0.0:7999"])
def test_a_short_operator_token_refuses_to_start(short_dir: Path, listen: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hyperhive.daemons.c0re", "serve", "--no-containers",
         "--state-dir", str(short_dir / "state"), "--run-dir", str(short_dir / "run"),
         "--listen", listen, "--token", "short-secret"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "too short" in result.stderr and "short-secret" not in result.stderr
    assert not (short_dir / "run" / "host.sock").exists()
