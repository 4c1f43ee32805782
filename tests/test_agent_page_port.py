"""A real ``hive-ag3nt serve`` (scripted engine) against a real ``hive-c0re``: a page port
someone else holds costs the page, never the agent; a harness run by hand keeps its page
key out of its log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import select
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Daemon
from hyperhive.agent.page_access import PAGE_KEY_FILE
from hyperhive.client import Client

WAIT = 30.0


@pytest.fixture
def alice(daemon: Daemon) -> Daemon:
    added = daemon.cli("agents", "add", "alice")
    assert added.returncode == 0, added.stderr
    return daemon


def harness(
    daemon: Daemon, base: Path, port: int, stderr: int | None = None
) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HYPERHIVE_OPERATOR_TOKEN", "HYPERHIVE_PAGE_KEY_DIGEST")
    }
    return subprocess.Popen(
        [sys.executable, "-m", "hyperhive.daemons.ag3nt", "serve", "--engine", "fake",
         "--name", "alice", "--socket", str(daemon.run_dir / "agents" / "alice" / "mcp.sock"),
         "--state", str(base / "state"), "--claude-dir", str(base / "claude"),
         "--port", str(port)],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr is None else stderr,
        start_new_session=True,
    )  # fmt: skip


def first_line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], WAIT)
    assert readable, "the harness printed nothing"
    return proc.stdout.readline().decode()


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise


@contextlib.contextmanager
def running(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


async def handled(host: Path, body: str) -> None:
    """Send ``body`` to alice as the operator; return once alice has acked it."""
    async with await Client.connect(host) as op, asyncio.timeout(WAIT):
        await op.call("send", to="alice", body=body)
        while "alice" in (await op.call("status"))["pending"]:
            pass  # each try is a round trip to the core: it waits on the core's own count


def history(db: Path) -> list[tuple[str, dict[str, Any]]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT kind, data FROM events ORDER BY id").fetchall()
    return [(kind, json.loads(data)) for kind, data in rows]


def test_a_squatted_page_port_costs_the_page_not_the_agent(alice: Daemon, short_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with running(harness(alice, short_dir / "alice", port)) as proc:
            assert first_line(proc).startswith("alice ready: no page")
            asyncio.run(handled(alice.host_socket, "are you still there?"))
            assert proc.poll() is None
            assert stop(proc) == 0
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert err.count(f"cannot listen on 127.0.0.1:{port}") == 1
    rows = history(short_dir / "alice" / "state" / "history.db")
    notices = [d["text"] for k, d in rows if k == "notice"]
    assert any(f"cannot listen on 127.0.0.1:{port}" in text for text in notices)
    ends = [d for k, d in rows if k == "turn_end"]
    assert len(ends) == 1 and ends[0]["ok"] is True
    assert any(k == "assistant" and "are you still there?" in d["text"] for k, d in rows)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_harness_by_hand_keeps_its_key_in_a_0600_file_and_out_of_its_log(
    alice: Daemon, short_dir: Path
) -> None:
    port = free_port()
    with running(harness(alice, short_dir / "alice", port)) as proc:
        assert first_line(proc) == f"alice ready: http://127.0.0.1:{port}/\n"
        key_file = short_dir / "alice" / "state" / PAGE_KEY_FILE
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=WAIT) as browser:
            assert browser.get("/api/status").status_code == 401
            assert browser.get("/", params={"token": key}).status_code == 303
            assert browser.get("/api/status").json()["name"] == "alice"
        assert stop(proc) == 0
    assert proc.stderr is not None and proc.stdout is not None
    err, out = proc.stderr.read().decode(), proc.stdout.read().decode()
    assert str(key_file) in err
    assert key not in err and key not in out


def test_a_harness_by_hand_shows_its_page_url_with_the_key_on_a_terminal(
    alice: Daemon, short_dir: Path
) -> None:
    port = free_port()
    leader, follower = pty.openpty()
    try:
        with running(harness(alice, short_dir / "alice", port, stderr=follower)) as proc:
            os.close(follower)
            follower = -1
            assert first_line(proc).startswith("alice ready: http://")
            key = (short_dir / "alice" / "state" / PAGE_KEY_FILE).read_text().strip()
            wanted = f"http://127.0.0.1:{port}/?token={key}".encode()
            seen = b""
            while wanted not in seen:
                readable, _, _ = select.select([leader], [], [], WAIT)
                assert readable, f"no page URL on the terminal: {seen!r}"
                seen += os.read(leader, 4096)
            assert stop(proc) == 0
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
