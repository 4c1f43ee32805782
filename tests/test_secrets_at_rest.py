"""Secrets at rest (issue 9, finding 7): a real core with agents in bwrap keeps
its state private, and the forwarded API key in no file and no command line.

The review found the key in ``<state>/backend/bwrap/h-*.json`` with mode 0644
and, without systemd, the state dir 0755: any local user read the key and
every message.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Daemon, start_daemon, stop_daemon

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
        assert "ANTHROPIC_API_KEY" in record.read_text()  # its name, for the record
    leaked = [p for p in files_under(state) if KEY.encode() in p.read_bytes()]
    assert leaked == []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            assert KEY.encode() not in argv, entry
