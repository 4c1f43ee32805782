"""The process backend against real child processes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from hyperhive.backends.base import BackendError, ContainerSpec
from hyperhive.backends.process import (
    EXIT_UNKNOWN,
    NO_ISOLATION_WARNING,
    ProcessBackend,
    memory_limit_argv,
)
from support.backend_probe import Lines, wait_gone, write_probe

BOUND = 30.0  # on waits for a child to stop or exit; a loaded 2-core machine is slow, not this


def make_spec(root: Path, name: str, *args: str, **extra: Any) -> ContainerSpec:
    agent = root / "state" / "agents" / name
    socket_dir, state_dir = root / "run" / "agents" / name, agent / "state"
    claude_dir, config_dir = agent / "claude", root / "state" / "applied" / name
    for path in (socket_dir, state_dir, claude_dir, config_dir):
        path.mkdir(parents=True, exist_ok=True)
    probe = write_probe(root / "probe")
    return ContainerSpec(
        name=name,
        role=extra.pop("role", "agent"),
        socket_dir=socket_dir,
        state_dir=state_dir,
        claude_dir=claude_dir,
        config_dir=config_dir,
        config_sha="c0ffee",
        command=(sys.executable, str(probe), *args),
        **extra,
    )


@pytest.fixture
def backend(short_dir: Path) -> ProcessBackend:
    return ProcessBackend(short_dir / "backend", stop_timeout=5.0)


async def test_the_harness_gets_its_dirs_by_env_and_its_output_reaches_the_sink(
    backend: ProcessBackend, short_dir: Path
) -> None:
    spec = make_spec(short_dir, "alice", "report", json.dumps({}), env={"EXTRA": "1"})
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    report = await lines.report()
    env = report["env"]
    assert env["HYPERHIVE_AGENT_NAME"] == "alice"
    assert env["HYPERHIVE_AGENT_SOCKET"] == str(spec.socket_dir / "mcp.sock")
    assert env["HYPERHIVE_AGENT_STATE"] == str(spec.state_dir)
    assert env["CLAUDE_CONFIG_DIR"] == str(spec.claude_dir)
    assert env["EXTRA"] == "1"
    assert "HYPERHIVE_AGENTS_DIR" not in env
    assert report["cwd"] == str(spec.state_dir)
    assert await lines.next_with("to stderr") == ""  # stderr is merged into the same sink
    assert await asyncio.wait_for(backend.wait("alice"), 10) == 0
    assert all(name == "alice" for name, _ in lines.seen)


async def test_the_manager_gets_the_agents_dir_and_config_env_cannot_move_its_dirs(
    backend: ProcessBackend, short_dir: Path
) -> None:
    agents = short_dir / "state" / "proposed"
    agents.mkdir(parents=True)
    spec = make_spec(
        short_dir,
        "hm1nd",
        "report",
        "{}",
        role="manager",
        agents_dir=agents,
        env={"HYPERHIVE_AGENT_STATE": "/elsewhere"},
    )
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    env = (await lines.report())["env"]
    assert env["HYPERHIVE_AGENTS_DIR"] == str(agents)
    assert env["HYPERHIVE_AGENT_STATE"] == str(spec.state_dir)


async def test_stop_terminates_the_whole_process_group_and_reports_stopped(
    backend: ProcessBackend, short_dir: Path
) -> None:
    spec = make_spec(short_dir, "alice", "tree")
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    main, child, escapee = map(int, (await lines.next_with("TREE ")).split())
    status = await backend.status("alice")
    assert status.state == "running"
    assert status.pid == main
    await backend.start(spec, lines)  # starting a running one is a no-op
    assert (await backend.status("alice")).pid == main
    await backend.stop("alice")
    assert wait_gone([main, child]) == []
    assert (await backend.status("alice")).state == "stopped"
    assert await backend.wait("alice") == -15
    # No isolation: a process that left the group in its own session survives.
    assert wait_gone([escapee], timeout=0.2) == [escapee]
    wait_gone_kill(escapee)


def wait_gone_kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    assert wait_gone([pid]) == []


async def test_stop_kills_a_child_that_ignores_sigterm_after_the_bounded_wait(
    short_dir: Path,
) -> None:
    backend = ProcessBackend(short_dir / "backend", stop_timeout=0.5)
    spec = make_spec(short_dir, "alice", "stubborn")
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    main, child, escapee = map(int, (await lines.next_with("TREE ")).split())
    # Bounded, not timed: a stop that waited for the stubborn child (it ignores
    # SIGTERM and sleeps forever) would never end; a loaded machine may be slow.
    await asyncio.wait_for(backend.stop("alice"), BOUND)
    assert wait_gone([main, child]) == []
    assert await backend.wait("alice") == -9
    wait_gone_kill(escapee)


async def test_wait_returns_the_exit_code_of_a_crash_at_once_even_if_stdout_is_held(
    backend: ProcessBackend, short_dir: Path
) -> None:
    spec = make_spec(short_dir, "alice", "crash")
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    waiting = asyncio.ensure_future(backend.wait("alice"))
    await lines.next_with("crashing")
    # The sleeping grandchild holds stdout for 600 s: a wait for it would run out.
    assert await asyncio.wait_for(waiting, BOUND) == 7
    assert (await backend.status("alice")).state == "stopped"
    await backend.stop("alice")  # sweeps the grandchild left in the group


async def test_a_new_backend_sees_a_running_orphan_and_can_stop_and_wait_for_it(
    backend: ProcessBackend, short_dir: Path
) -> None:
    spec = make_spec(short_dir, "alice", "tree")
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    main, child, escapee = map(int, (await lines.next_with("TREE ")).split())
    restarted = ProcessBackend(short_dir / "backend", stop_timeout=5.0)  # a new core
    status = await restarted.status("alice")
    assert (status.state, status.pid) == ("running", main)
    waiting = asyncio.ensure_future(restarted.wait("alice"))
    await restarted.stop("alice")
    assert await asyncio.wait_for(waiting, BOUND) == EXIT_UNKNOWN
    assert wait_gone([main, child]) == []
    assert (await restarted.status("alice")).state == "stopped"
    wait_gone_kill(escapee)


async def test_start_replaces_an_orphan_whose_output_pipe_died_with_the_old_core(
    backend: ProcessBackend, short_dir: Path
) -> None:
    spec = make_spec(short_dir, "alice", "tree")
    first = Lines()
    await backend.create(spec)
    await backend.start(spec, first)
    old_main, _, old_escapee = map(int, (await first.next_with("TREE ")).split())
    restarted = ProcessBackend(short_dir / "backend", stop_timeout=5.0)
    lines = Lines()
    await restarted.start(spec, lines)
    new_main, _, new_escapee = map(int, (await lines.next_with("TREE ")).split())
    assert new_main != old_main
    assert wait_gone([old_main]) == []
    await restarted.destroy("alice")
    assert (await restarted.status("alice")).state == "missing"
    wait_gone_kill(old_escapee)
    wait_gone_kill(new_escapee)


async def test_create_update_and_destroy_follow_the_container_life_cycle(
    backend: ProcessBackend, short_dir: Path
) -> None:
    spec = make_spec(short_dir, "alice", "report", "{}")
    assert (await backend.status("alice")).state == "missing"
    with pytest.raises(BackendError, match="does not exist"):
        await backend.start(spec, Lines())
    with pytest.raises(BackendError, match="does not exist"):
        await backend.update(spec)
    await backend.create(spec)
    assert (await backend.status("alice")).state == "stopped"
    with pytest.raises(BackendError, match="already exists"):
        await backend.create(spec)
    await backend.update(spec)
    await backend.destroy("alice")
    await backend.destroy("alice")  # destroying a missing one is a no-op
    assert (await backend.status("alice")).state == "missing"
    with pytest.raises(BackendError, match="not running"):
        await backend.wait("alice")


async def test_a_missing_command_is_a_clear_backend_error(
    backend: ProcessBackend, short_dir: Path
) -> None:
    spec = make_spec(short_dir, "alice")
    spec = ContainerSpec(**{**_fields(spec), "command": (str(short_dir / "nope"),)})
    await backend.create(spec)
    with pytest.raises(BackendError, match="nope"):
        await backend.start(spec, Lines())


def _fields(spec: ContainerSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in ContainerSpec.__dataclass_fields__}


async def test_memory_mb_caps_the_agent(backend: ProcessBackend, short_dir: Path) -> None:
    spec = make_spec(short_dir, "alice", "report", "{}", memory_mb=700)
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    report = await lines.report()
    if Path(memory_limit_argv(700)[0]).name == "prlimit":
        assert report["rlimit_as"] == 700 * 1024 * 1024
    else:  # a systemd scope: the cgroup carries MemoryMax
        assert memory_max(report["cgroup"]) == str(700 * 1024 * 1024)


def memory_max(cgroup: str) -> str:
    path = cgroup.strip().split("::", 1)[1].lstrip("/")
    return Path("/sys/fs/cgroup", path, "memory.max").read_text().strip()


def test_constructing_the_process_backend_warns_loudly_about_no_isolation(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        ProcessBackend(short_dir)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [NO_ISOLATION_WARNING]
    assert "NO ISOLATION" in NO_ISOLATION_WARNING


async def test_an_agent_process_runs_below_the_core_at_its_spec_niceness(
    backend: ProcessBackend, short_dir: Path
) -> None:
    spec = make_spec(short_dir, "alice", "report", json.dumps({}), nice=7)
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    report = await lines.report()
    assert report["nice"] == os.nice(0) + 7
    await backend.destroy("alice")
