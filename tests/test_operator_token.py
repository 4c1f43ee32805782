"""An operator token always exists: kept in ``<state>/operator-token`` (0600) unless given,
printed only to a terminal, handed back by ``hive dashboard-url``, and traded by browsers
for a session cookie. The daemon tests drive a real ``hive-c0re`` with its dashboard."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Daemon, start_daemon, stop_daemon
from hyperhive.client import Client, RemoteError
from hyperhive.core.operator_token import (
    TOKEN_FILE,
    DashboardLink,
    resolve_token,
    startup_lines,
)
from hyperhive.core.ops import handler
from hyperhive.errors import ConfigError, Forbidden

GIVEN = "given-operator-token-0123456789"
WAIT = 20.0


def test_a_token_is_generated_once_with_mode_0600_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = resolve_token(None, tmp_path / "state")
    path = tmp_path / "state" / TOKEN_FILE
    assert first.source == "generated" and first.path == path and len(first.value) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first.value
    again = resolve_token(None, tmp_path / "state")
    assert again.source == "file" and again.value == first.value
    assert first.value not in caplog.text and first.value not in repr(first)
    assert [p.name for p in path.parent.iterdir()] == [TOKEN_FILE]  # no temp file left


def test_a_given_token_wins_and_no_file_is_written(tmp_path: Path) -> None:
    resolve_token(None, tmp_path)
    given = resolve_token(f"  {GIVEN}\n", tmp_path)
    assert given.value == GIVEN and given.source == "given"
    assert GIVEN not in given.where() and "HYPERHIVE_OPERATOR_TOKEN" in given.where()
    assert resolve_token(GIVEN, tmp_path / "fresh").source == "given"
    assert not (tmp_path / "fresh" / TOKEN_FILE).exists()
    with pytest.raises(ConfigError, match="too short") as refused:
        resolve_token("short-token", tmp_path)
    assert "short-token" not in refused.value.message


def test_a_token_file_readable_by_others_is_made_0600_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / TOKEN_FILE
    path.write_text(GIVEN + "\n")
    path.chmod(0o644)
    assert resolve_token(None, tmp_path).value == GIVEN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "readable by others" in caplog.text and GIVEN not in caplog.text


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo", "short", "binary"])
def test_a_token_file_that_is_not_a_plain_secret_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / TOKEN_FILE
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(GIVEN)
    if kind == "symlink":
        path.symlink_to(elsewhere)
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "short":
        path.write_text("abc")
        path.chmod(0o600)
    else:
        path.write_bytes(b"\xff\xfe" * 10)
        path.chmod(0o600)
    says = {"symlink": "symlink", "short": "too short", "binary": "UTF-8"}
    with pytest.raises(ConfigError, match=says.get(kind, "not a regular file")):
        resolve_token(None, tmp_path)
    assert elsewhere.read_text() == GIVEN


def test_the_token_is_printed_only_to_a_terminal(tmp_path: Path) -> None:
    token = resolve_token(None, tmp_path)
    link = DashboardLink("127.0.0.1", 7000, token.value)
    (tty,) = startup_lines(link, token, tty=True)
    assert tty == f"dashboard: http://127.0.0.1:7000/?token={token.value}"
    (journal,) = startup_lines(link, token, tty=False)
    assert token.value not in journal
    assert journal == (
        f"dashboard: http://127.0.0.1:7000/ (token: {tmp_path / TOKEN_FILE}, "
        "or run `hive dashboard-url`)"
    )
    assert DashboardLink("0.0.0.0", 7000, "t").base == "http://127.0.0.1:7000/"
    assert DashboardLink("::1", 7000, "t").base == "http://[::1]:7000/"
    assert token.value not in repr(link)


def test_only_the_host_socket_has_dashboard_url() -> None:
    assert handler("operator", "dashboard_url") is not None
    for role in ("agent", "manager"):
        with pytest.raises(Forbidden):
            handler(role, "dashboard_url")


# -- a real daemon ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def next_stdout_line(daemon: Daemon) -> str:
    stdout = daemon.proc.stdout
    assert stdout is not None
    # Not select(): the line may already sit in the reader's buffer with the ready line.
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        line: bytes = pool.submit(stdout.readline).result(timeout=WAIT)
    finally:
        pool.shutdown(wait=False)  # on a timeout, stopping the daemon ends the read
    return line.decode()


@pytest.fixture
def dashboard_daemon(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    monkeypatch.delenv("HYPERHIVE_OPERATOR_TOKEN", raising=False)
    port = free_port()
    daemon = start_daemon(
        short_dir / "state",
        short_dir / "run",
        "--no-containers",
        "--listen",
        f"127.0.0.1:{port}",
        "--log-level",
        "DEBUG",
    )
    try:
        yield daemon
    finally:
        stop_daemon(daemon)


def test_a_daemon_makes_a_token_and_serves_only_sessions_bought_with_it(
    dashboard_daemon: Daemon,
) -> None:
    daemon = dashboard_daemon
    token_file = daemon.state_dir / TOKEN_FILE
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    shown = next_stdout_line(daemon)
    assert shown.startswith("dashboard: http://127.0.0.1:") and str(token_file) in shown

    printed = daemon.cli("dashboard-url")
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    assert json.loads(daemon.cli("--json", "dashboard-url").stdout) == {"url": url}
    base, _, query = url.partition("?")
    assert query == f"token={token}"

    with httpx.Client(base_url=base, timeout=WAIT) as browser:
        page = browser.get("/")
        assert page.status_code == 401 and "hive-csrf" not in page.text  # nothing to scrape
        assert browser.get("/api/agents").status_code == 401
        login = browser.get(url)
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("hive_session=") and token not in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get("/api/agents").status_code == 200
        assert 'name="hive-csrf"' in browser.get("/").text
    with httpx.Client(base_url=base, timeout=WAIT) as stranger:
        stranger.cookies.set("hive_session", "not-a-session-of-this-daemon")
        assert stranger.get("/api/agents").status_code == 401

    assert stop_daemon(daemon) == 0
    assert daemon.proc.stdout is not None and daemon.proc.stderr is not None
    out, err = daemon.proc.stdout.read().decode(), daemon.proc.stderr.read().decode()
    assert token not in shown + out and token not in err
    assert "DEBUG" in err  # the log was as loud as it gets, and still held no token


def test_a_restarted_daemon_keeps_its_token(short_dir: Path, dashboard_daemon: Daemon) -> None:
    before = dashboard_daemon.cli("dashboard-url").stdout.strip()
    assert stop_daemon(dashboard_daemon) == 0
    listen = before.split("/")[2]  # http://HOST:PORT/?token=...
    again = start_daemon(
        short_dir / "state", short_dir / "run", "--no-containers", "--listen", listen
    )
    try:
        assert again.cli("dashboard-url").stdout.strip() == before
    finally:
        assert stop_daemon(again) == 0


def test_a_daemon_without_a_dashboard_says_so_and_agents_cannot_ask(daemon: Daemon) -> None:
    result = daemon.cli("dashboard-url")
    assert result.returncode == 1 and "serves no dashboard" in result.stderr
    daemon.cli("agents", "add", "alice")

    async def ask(path: Path) -> str:
        async with await Client.connect(path) as client:
            with pytest.raises(RemoteError) as refused:
                await client.call("dashboard_url")
            return refused.value.code

    assert asyncio.run(ask(daemon.host_socket)) == "no_dashboard"
    assert asyncio.run(ask(daemon.run_dir / "agents" / "alice" / "mcp.sock")) == "forbidden"
