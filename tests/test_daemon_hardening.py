"""A real core with agents in bwrap, seen from the host (issue 9, findings 1 and 7).

The review found every agent process holding every capability (bwrap run by
root), the API key in ``<state>/backend/bwrap/h-*.json`` with mode 0644 and,
without systemd, the state dir 0755: any local user read the key and every
message.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Daemon, start_daemon, start_fake_engine_daemon, stop_daemon
from support.backend_probe import wait_gone
from support.procs import harness_pids, processes, sandboxes
from support.wire import until_status

KEY = "sk-ant-api03-" + "S3CRET" * 12


@pytest.fixture
def hive(short_dir: Path) -> Iterator[Daemon]:
    os.environ["HYPERHIVE_ENGINE"] = "fake"  # forwarded into every container
    os.environ["ANTHROPIC_API_KEY"] = KEY
    try:
        daemon = start_daemon(short_dir / "state", short_dir / "run", "--backend", "bwrap")
    finally:
        del os.environ["HYPERHIVE_ENGINE"], os.environ["ANTHROPIC_API_KEY"]
    try:
        yield daemon
    finally:
        stop_daemon(daemon)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def files_under(root: Path) -> Iterator[Path]:
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                yield path


def test_state_is_private_and_the_key_is_in_no_file_nor_command_line(hive: Daemon) -> None:
    spawned = hive.cli("spawn", "bob")
    assert spawned.returncode == 0 and "bob: running" in spawned.stdout, spawned.stderr
    state, run = hive.state_dir, hive.run_dir
    assert (mode(state), mode(run)) == (0o700, 0o700)
    for db in state.glob("hive.db*"):
        assert mode(db) == 0o600, db
    records = list((state / "backend" / "bwrap").glob("h-*.json"))
    assert {r.name for r in records} == {"h-bob.json", "h-hm1nd.json"}
    assert mode(state / "backend" / "bwrap") == 0o700
    for record in records:
        assert mode(record) == 0o600
        # The key stays in the core (its gateway): not even its name reaches a spec.
        assert "ANTHROPIC_API_KEY" not in record.read_text()
    leaked = [p for p in files_under(state) if KEY.encode() in p.read_bytes()]
    assert leaked == []
    for pid, argv in processes():
        assert not any(KEY.encode() in arg for arg in argv), pid


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in status)}


async def test_a_spawned_agents_harness_is_its_own_uid_with_no_capability(hive: Daemon) -> None:
    assert hive.cli("spawn", "bob").returncode == 0
    # Once both harnesses long-poll the core, setpriv has long made them who they are.
    await until_status(hive.host_socket, lambda s: {"bob", "hm1nd"} <= set(s["waiting"]))
    uids: set[str] = set()
    for name in ("bob", "hm1nd"):
        pids = harness_pids(name)
        assert pids, f"no harness process for {name}"
        for pid in pids:
            status = proc_status(pid)
            uid = status["Uid"].split()
            assert uid[0] != "0" and len(set(uid)) == 1, (name, uid)
            assert status["Groups"] == ""
            for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                assert status[field] == "0000000000000000", (name, field)
            assert status["NoNewPrivs"] == "1"
            uids.add(uid[0])
        socket_dir = hive.run_dir / ("manager" if name == "hm1nd" else f"agents/{name}")
        assert str((socket_dir / "mcp.sock").stat().st_uid) in uids
    assert len(uids) == 2  # bob and hm1nd are not the same user


async def test_agents_end_with_a_core_killed_with_9(short_dir: Path) -> None:
    # bwrap's init outlives its parent; the lifeline pipe is what ends it.
    daemon = start_fake_engine_daemon(short_dir)
    assert daemon.cli("spawn", "bob").returncode == 0
    await until_status(daemon.host_socket, lambda s: {"bob", "hm1nd"} <= set(s["waiting"]))
    sandboxed = [pid for pid, _ in sandboxes(short_dir)]
    inside = [*harness_pids("bob"), *harness_pids("hm1nd"), *sandboxed]
    assert len(inside) >= 6  # two harnesses, and for each bwrap and its init
    os.killpg(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait(timeout=10)
    assert wait_gone(inside, timeout=20) == []
