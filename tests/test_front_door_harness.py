"""A real ``hive-ag3nt serve`` (fake engine) and its ``web.sock``: 0600 from birth, a stale
one replaced, gone at stop, and kept serving when the TCP port cannot be had."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import httpx

from conftest import Daemon
from test_agent_page_port import first_line, harness, running, stop


def sock_client(path: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://harness")


def test_web_sock_replaces_a_stale_one_serves_ungated_and_goes_at_stop(
    daemon: Daemon, short_dir: Path
) -> None:
    assert daemon.cli("agents", "add", "alice").returncode == 0
    path = daemon.run_dir / "agents" / "alice" / "web.sock"
    path.write_text("stale")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with running(harness(daemon, short_dir / "alice", port)) as proc:
            assert first_line(proc).startswith("alice ready: no page")
            mode = os.lstat(path).st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
            with sock_client(path) as core:
                assert core.get("/api/status").json()["name"] == "alice"  # no gate of its own
                said = core.post("/api/prompt", json={"text": "/help"})  # no CSRF of its own
                assert said.json()["ok"] is True
                assert core.get("/").status_code == 404  # data only: the core serves the page
            assert stop(proc) == 0
    assert not os.path.lexists(path)
