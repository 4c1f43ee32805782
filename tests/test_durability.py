"""Keyed sends across a ``kill -9`` of a real ``hive-c0re``, ``hive send --key``, and the
durability levels (sqlite's ``synchronous``) the daemon runs with."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon, start_daemon, stop_daemon
from hyperhive import config as hive_config
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.errors import ConfigError
from support.answer_eater import AnswerEater
from support.wire import ANSWER_TIMEOUT, RawConnection

SEND = {"to": "bob", "body": "one and only", "key": "retry-me"}


def kill_9(daemon: Daemon) -> None:
    os.killpg(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait(timeout=10)


def alice_socket(run: Path) -> Path:
    return run / "agents" / "alice" / "mcp.sock"


async def call(path: Path, op: str, **args: Any) -> Any:
    async with await Client.connect(path) as client:
        return await client.call(op, **args)


async def log(run: Path) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = await call(run / "host.sock", "messages")
    return listed


async def until_stored(run: Path, key: str) -> None:
    """Round trips to the core until its log holds a message with ``key``; bounded."""
    async with asyncio.timeout(ANSWER_TIMEOUT):
        while not any(m["key"] == key for m in await log(run)):
            pass


def with_alice_and_bob(state: Path, run: Path) -> Daemon:
    first = start_daemon(state, run)
    assert first.cli("agents", "add", "bob").returncode == 0
    assert first.cli("agents", "add", "alice", "--allow-send", "bob").returncode == 0
    return first


def test_a_keyed_send_answered_before_a_kill_9_is_answered_the_same_after_it(
    short_dir: Path,
) -> None:
    state, run = short_dir / "state", short_dir / "run"
    first = with_alice_and_bob(state, run)
    answered = asyncio.run(call(alice_socket(run), "send", **SEND))
    kill_9(first)

    second = start_daemon(state, run)
    try:
        again = asyncio.run(call(alice_socket(run), "send", **SEND))
        listed = asyncio.run(log(run))
    finally:
        assert stop_daemon(second) == 0
    assert again == answered
    assert [(m["id"], m["key"]) for m in listed] == [(answered["id"], "retry-me")]


@pytest.mark.parametrize("cut", ["answer unread", "half a line"])
def test_a_keyed_send_in_flight_at_a_kill_9_is_stored_once_when_retried(
    short_dir: Path, cut: str
) -> None:
    state, run = short_dir / "state", short_dir / "run"
    first = with_alice_and_bob(state, run)
    line = json.dumps({"id": 1, "op": "send", "args": SEND}).encode() + b"\n"

    async def in_flight() -> None:
        conn = await RawConnection.open(alice_socket(run))
        if cut == "answer unread":
            await conn.send(line)
            await until_stored(run, SEND["key"])  # stored and answered; nobody reads it
        else:
            await conn.send(line[: len(line) // 2])  # not a request yet
        kill_9(first)
        await conn.close()

    asyncio.run(in_flight())
    second = start_daemon(state, run)
    try:
        retried = asyncio.run(call(alice_socket(run), "send", **SEND))
        listed = asyncio.run(log(run))
    finally:
        assert stop_daemon(second) == 0
    assert [(m["id"], m["body"], m["key"]) for m in listed] == [
        (retried["id"], SEND["body"], SEND["key"])
    ]


def test_hive_send_with_the_same_key_twice_stores_once(daemon: Daemon) -> None:
    assert daemon.cli("agents", "add", "alice").returncode == 0
    for _ in range(2):
        sent = daemon.cli("send", "--to", "alice", "--key", "op-7", "hello once")
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip() == "sent #1 to alice"
    listed = json.loads(daemon.cli("--json", "messages").stdout)
    assert [(m["body"], m["key"]) for m in listed] == [("hello once", "op-7")]
    bad = daemon.cli("send", "--to", "alice", "--key", "", "no key at all")
    assert bad.returncode == 1 and "printable ASCII" in bad.stderr
    assert len(json.loads(daemon.cli("--json", "messages").stdout)) == 1


def test_hive_send_without_a_key_makes_one_so_two_sends_are_two_messages(
    daemon: Daemon,
) -> None:
    assert daemon.cli("agents", "add", "alice").returncode == 0
    for _ in range(2):
        assert daemon.cli("send", "--to", "alice", "same words").returncode == 0
    keys = [m["key"] for m in json.loads(daemon.cli("--json", "messages").stdout)]
    assert len(set(keys)) == 2 and all(len(k) == 32 for k in keys)


async def test_hive_send_retries_once_after_a_lost_answer_and_stores_once(
    daemon: Daemon, short_dir: Path
) -> None:
    assert daemon.cli("agents", "add", "alice").returncode == 0
    # The CLI's run dir holds a host.sock that loses the first answer of the real one.
    front = short_dir / "front"
    front.mkdir()
    async with AnswerEater(front / "host.sock", daemon.host_socket) as eater:
        cli = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "hyperhive.cli.main", "--run-dir", str(front)),
            *("send", "--json", "--to", "alice", "through a reset"),
            env=daemon.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(cli.communicate(), 30)
    assert cli.returncode == 0, err.decode()
    sent = json.loads(out)
    assert [r["args"]["key"] for r in eater.requests] == [sent["key"], sent["key"]]
    listed = json.loads(daemon.cli("--json", "messages").stdout)
    assert [m["id"] for m in listed] == [sent["id"]]


# -- durability levels ------------------------------------------------------------------


@pytest.mark.parametrize(("durability", "synchronous"), [("normal", 1), ("full", 2)])
async def test_the_durability_level_sets_sqlite_s_synchronous(
    config: Config, durability: str, synchronous: int
) -> None:
    running = Hive(replace(config, durability=durability))
    try:
        assert running.conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous
        assert running.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await running.shutdown(grace=1.0)


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_hive_c0re_serve_durability_is_what_its_database_runs_with(
    short_dir: Path, durability: str
) -> None:
    running = start_daemon(
        short_dir / "state", short_dir / "run", "--no-containers", "--durability", durability
    )
    try:
        status = json.loads(running.cli("--json", "status").stdout)
    finally:
        assert stop_daemon(running) == 0
    assert status["durability"] == durability


def test_durability_and_the_key_window_come_from_flags_and_env() -> None:
    base = {"HYPERHIVE_STATE_DIR": "/tmp/s"}
    assert hive_config.resolve(env=base, uid=1000).durability == "normal"
    assert hive_config.resolve(env=base, uid=1000).send_key_window == 24 * 3600
    env = {**base, "HYPERHIVE_DURABILITY": "full", "HYPERHIVE_SEND_KEY_WINDOW": "60"}
    assert hive_config.resolve(env=env, uid=1000).durability == "full"
    assert hive_config.resolve(env=env, uid=1000).send_key_window == 60
    assert hive_config.resolve(durability="normal", env=env, uid=1000).durability == "normal"
    with pytest.raises(ConfigError, match="unknown durability 'fsync'"):
        hive_config.resolve(env={**base, "HYPERHIVE_DURABILITY": "fsync"}, uid=1000)
    with pytest.raises(ConfigError, match="HYPERHIVE_SEND_KEY_WINDOW"):
        hive_config.resolve(env={**base, "HYPERHIVE_SEND_KEY_WINDOW": "-1"}, uid=1000)
