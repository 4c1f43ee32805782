"""Shared fixtures: short temp dirs (unix socket paths must fit in 108 bytes),
an in-process core, and a real ``hive-c0re`` process."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import expect

from hyperhive.config import Config
from hyperhive.core.hive import Hive
from support.postgres import drop_database, fresh_database

DATABASE_ENV = "HYPERHIVE_DATABASE_URL"

# A core with a backend creates and starts hm1nd before its ready line: seconds on a
# loaded 2-core machine, never a minute.
READY_TIMEOUT = 60.0
# Playwright's expect() gives up after 5 s by default; Chromium on a loaded 2-core machine
# can take longer. A bound, not a target: tests that promise a latency measure it.
expect.set_options(timeout=20_000)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hh", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def both_stores(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test once on each store: a module opts in with
    ``pytestmark = pytest.mark.usefixtures("both_stores")``. For PostgreSQL, a fresh
    database named by ``HYPERHIVE_DATABASE_URL``, which the daemons it starts inherit
    and :func:`config` and :func:`store_target` read."""
    if request.param == "sqlite":
        monkeypatch.delenv(DATABASE_ENV, raising=False)
        yield "sqlite"
        return
    url = fresh_database()
    monkeypatch.setenv(DATABASE_ENV, url)
    try:
        yield "postgresql"
    finally:
        drop_database(url)


@pytest.fixture
def store_target(tmp_path: Path) -> str | Path:
    """What ``open_store`` opens for a test: the database of :func:`both_stores`, if the
    test runs under it, else a sqlite file of its own."""
    return os.environ.get(DATABASE_ENV) or tmp_path / "hive.db"


@pytest.fixture
def config(short_dir: Path) -> Config:
    return Config(
        state_dir=short_dir / "state",
        run_dir=short_dir / "run",
        database_url=os.environ.get(DATABASE_ENV) or None,
    )


@pytest.fixture
async def hive(config: Config) -> AsyncIterator[Hive]:
    running = Hive(config)
    await running.start()
    try:
        yield running
    finally:
        await running.shutdown(grace=2.0)


@dataclass
class Daemon:
    """A real ``hive-c0re serve`` child process and the env to reach it."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(repr=False)
    run_dir: Path
    state_dir: Path

    @property
    def host_socket(self) -> Path:
        return self.run_dir / "host.sock"

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hyperhive.cli.main", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


def start_daemon(state_dir: Path, run_dir: Path, *extra: str) -> Daemon:
    """``extra`` flags for ``serve``; without any, a broker-only core (no containers)."""
    extra = extra or ("--no-containers",)
    if "--listen" not in extra:
        # Daemons run side by side in tests; only those that ask get a dashboard.
        extra = (*extra, "--no-dashboard")
    env = {
        **os.environ,
        "HYPERHIVE_STATE_DIR": str(state_dir),
        "HYPERHIVE_RUN_DIR": str(run_dir),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyperhive.daemons.c0re", "serve", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    daemon = Daemon(proc, env, run_dir, state_dir)
    wait_ready(daemon)
    return daemon


def start_fake_engine_daemon(base: Path, backend: str = "bwrap") -> Daemon:
    """A core on ``backend`` whose agents run the fake engine (forwarded into every
    container), its state and run dirs under ``base``."""
    os.environ["HYPERHIVE_ENGINE"] = "fake"
    try:
        return start_daemon(base / "state", base / "run", "--backend", backend)
    finally:
        del os.environ["HYPERHIVE_ENGINE"]


def wait_ready(daemon: Daemon) -> None:
    """Block until the daemon prints its ready line (bounded), or fail with its stderr."""
    stdout = daemon.proc.stdout
    assert stdout is not None
    readable, _, _ = select.select([stdout], [], [], READY_TIMEOUT)
    line = stdout.readline() if readable else b""
    if not line.startswith(b"hive-c0re ready"):
        daemon.proc.kill()
        _, err = daemon.proc.communicate(timeout=10)
        raise AssertionError(f"hive-c0re did not become ready: {line!r} {err.decode()}")


def stop_daemon(daemon: Daemon) -> int:
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
    try:
        return daemon.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.proc.pid, signal.SIGKILL)
        return daemon.proc.wait(timeout=10)


@pytest.fixture
def daemon(short_dir: Path) -> Iterator[Daemon]:
    running = start_daemon(short_dir / "state", short_dir / "run")
    try:
        yield running
    finally:
        stop_daemon(running)
