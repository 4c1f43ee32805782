"""The bwrap backend's isolation, checked from inside real sandboxes.

A probe runs as the container command in ``h-alice``, ``h-bob`` and ``hm1nd``
under a temporary hive layout (DESIGN §2) and reports what it can see.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hyperhive.backends._child import descendants
from hyperhive.backends.base import ContainerSpec
from hyperhive.backends.bwrap import BwrapBackend
from hyperhive.backends.bwrap_argv import bwrap_argv
from support.backend_probe import Lines, wait_gone, write_probe

BOUND = 30.0  # on waits for a sandbox to stop or exit; a loaded 2-core machine is slow, not this
UIDS = {"hm1nd": 1_900_000_100, "alice": 1_900_000_101, "bob": 1_900_000_102}


@dataclass
class Hive:
    root: Path
    state: Path
    run: Path
    probe: Path
    backend: BwrapBackend

    def spec(self, name: str, *args: str, **extra: Any) -> ContainerSpec:
        manager = name == "hm1nd"
        agent = self.state / "agents" / name
        return ContainerSpec(
            name=name,
            role="manager" if manager else "agent",
            socket_dir=self.run / "manager" if manager else self.run / "agents" / name,
            state_dir=agent / "state",
            claude_dir=agent / "claude",
            config_dir=self.state / "applied" / name,
            config_sha="c0ffee",
            command=(sys.executable, str(self.probe), *args),
            agents_dir=self.state / "proposed" if manager else None,
            extra_ro_binds=(self.probe.parent,),
            uid=UIDS[name],
            work_dir=agent / "work",
            **extra,
        )

    def make_dirs(self, spec: ContainerSpec) -> None:
        assert spec.work_dir is not None
        for path in (
            spec.socket_dir,
            spec.state_dir,
            spec.claude_dir,
            spec.config_dir,
            spec.work_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)
            (path / "marker").write_text(f"{spec.name} {path.name}")
        if spec.agents_dir is not None:
            (spec.agents_dir / "alice" / "config").mkdir(parents=True, exist_ok=True)

    async def run_report(self, spec: ContainerSpec, ask: dict[str, Any]) -> dict[str, Any]:
        spec = ContainerSpec(**{**_fields(spec), "command": (*spec.command, json.dumps(ask))})
        lines = Lines()
        await self.backend.create(spec)
        await self.backend.start(spec, lines)
        report = await lines.report()
        assert await asyncio.wait_for(self.backend.wait(spec.name), 10) == 0
        return report


def _fields(spec: ContainerSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in ContainerSpec.__dataclass_fields__}


@pytest.fixture
async def hive(short_dir: Path) -> AsyncIterator[Hive]:
    state, run = short_dir / "state", short_dir / "run"
    run.mkdir(parents=True)
    (run / "host.sock").write_text("the operator's socket")
    (state / "hive.db").parent.mkdir(parents=True)
    (state / "hive.db").write_text("db")
    backend = BwrapBackend(state / "backend", hide=(state, run), stop_timeout=5.0)
    hive = Hive(short_dir, state, run, write_probe(short_dir / "probe"), backend)
    for name in ("alice", "bob", "hm1nd"):
        hive.make_dirs(hive.spec(name))
    yield hive
    for name in ("alice", "bob", "hm1nd"):
        await backend.destroy(name)


async def test_an_agent_sees_only_its_own_processes_hostname_and_dirs(hive: Hive) -> None:
    bob = hive.spec("bob")
    hidden = [
        str(bob.state_dir), str(bob.claude_dir), str(bob.socket_dir),
        str(hive.run / "host.sock"), str(hive.state / "hive.db"), str(hive.state / "proposed"),
        "/agents", "/root/.ssh", "/root/.bashrc",
    ]  # fmt: skip
    report = await hive.run_report(
        hive.spec("alice", "report", env={"SECRET": "s3cret"}),
        {
            "read": ["/state/marker", "/root/.claude/marker", "/run/hive/marker"],
            "exists": hidden,
            "writable": ["/state", "/root/.claude", "/run/hive", "/work", "/usr", "/"],
        },
    )
    assert report["hostname"] == "h-alice"
    # bwrap's init (pid 1) and the probe: nothing of the host, nothing of bob.
    assert set(report["pids"]) <= {1, report["pid"]}
    assert report["pid"] in report["pids"]
    assert report["read"] == {
        "/state/marker": "alice state",
        "/root/.claude/marker": "alice claude",
        "/run/hive/marker": "alice alice",
    }
    assert report["exists"] == dict.fromkeys(hidden, False)
    assert report["writable"] == {
        "/state": True, "/root/.claude": True, "/run/hive": True, "/work": True,
        "/usr": False, "/": False,
    }  # fmt: skip
    env = report["env"]
    assert env["HYPERHIVE_AGENT_SOCKET"] == "/run/hive/mcp.sock"
    assert env["HYPERHIVE_AGENT_STATE"] == "/state"
    assert env["CLAUDE_CONFIG_DIR"] == "/root/.claude"
    assert env["HOME"] == "/root"
    assert "HYPERHIVE_AGENTS_DIR" not in env
    assert not any(key.startswith("PYTEST") for key in env)  # nothing of the core's env
    assert env["SECRET"] == "s3cret"
    assert report["cwd"] == "/work"  # the agent works in its workspace
    # Nor is it in bwrap's argv, which every host user can read in /proc.
    assert all("s3cret" not in arg for arg in bwrap_argv(hive.spec("alice", env=env)))


async def test_the_manager_alone_gets_a_writable_agents_dir(hive: Hive) -> None:
    report = await hive.run_report(
        hive.spec("hm1nd", "report"),
        {
            "read": ["/state/marker", "/run/hive/marker"],
            "exists": ["/agents/alice/config", str(hive.spec("alice").state_dir)],
            "writable": ["/agents", "/agents/alice/config"],
        },
    )
    assert report["hostname"] == "h-hm1nd"
    assert report["read"] == {"/state/marker": "hm1nd state", "/run/hive/marker": "hm1nd manager"}
    assert report["exists"] == {
        "/agents/alice/config": True,
        str(hive.spec("alice").state_dir): False,
    }
    assert report["writable"] == {"/agents": True, "/agents/alice/config": True}
    assert report["env"]["HYPERHIVE_AGENTS_DIR"] == "/agents"


async def test_no_agent_reaches_a_listener_on_the_hosts_loopback_with_network_or_without(
    hive: Hive,
) -> None:
    # Every sandbox has its own network namespace: 127.0.0.1 in there is its own
    # (tests/test_agent_network.py checks what a networked one does reach).
    accepted = asyncio.Event()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        online = await hive.run_report(hive.spec("bob", "report"), {"port": port})
        assert online["connect"] == "ConnectionRefusedError"
        offline = await hive.run_report(hive.spec("alice", "report", network=False), {"port": port})
        assert offline["connect"] == "ConnectionRefusedError"
        assert not accepted.is_set()


def sandbox_pids(outer: int) -> list[int]:
    """Host pids of every process in the sandbox's pid namespace."""
    init = next(pid for pid, parent in descendants(outer) if parent == outer)
    namespace = os.readlink(f"/proc/{init}/ns/pid")
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.mark.parametrize("mode", ["tree", "stubborn"])
async def test_stop_kills_the_whole_sandbox_even_processes_that_left_the_group(
    hive: Hive, mode: str
) -> None:
    backend = BwrapBackend(hive.state / "backend", hide=(hive.state, hive.run), stop_timeout=0.5)
    spec = hive.spec("alice", mode)
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    await lines.next_with("TREE ")  # pids inside the namespace: 2, 3, 4
    status = await backend.status("alice")
    assert status.state == "running" and status.pid is not None
    inside = sandbox_pids(status.pid)
    assert len(inside) == 4  # init, probe, its child, the escapee in its own session
    # Bounded, not timed: a stop that waited for the escapee (it sleeps forever)
    # would never end, and a loaded machine may take seconds over the 0.5 s.
    await asyncio.wait_for(backend.stop("alice"), BOUND)
    assert wait_gone([status.pid, *inside]) == []
    assert (await backend.status("alice")).state == "stopped"
    code = await backend.wait("alice")
    # SIGTERM reaches the harness (bwrap relays its death as 128+15); the
    # stubborn one is SIGKILLed with bwrap.
    assert code == (143 if mode == "tree" else -9)


async def test_wait_reports_a_crash_inside_the_sandbox_at_once(hive: Hive) -> None:
    spec = hive.spec("alice", "crash")
    lines = Lines()
    await hive.backend.create(spec)
    await hive.backend.start(spec, lines)
    waiting = asyncio.ensure_future(hive.backend.wait("alice"))
    await lines.next_with("crashing")
    # The grandchild holds stdout for 600 s: a wait that waited for it would run out.
    assert await asyncio.wait_for(waiting, BOUND) == 7
    assert (await hive.backend.status("alice")).state == "stopped"


async def test_the_harness_imports_inside_the_sandbox_though_the_interpreter_is_hidden(
    hive: Hive,
) -> None:
    # Here the base interpreter may live under /root or /tmp, both hidden:
    # the backend binds sys.prefix, sys.base_prefix and the sources back.
    code = "import hyperhive.daemons.ag3nt, sys; print('HARNESS', sys.prefix)"
    spec = ContainerSpec(**{**_fields(hive.spec("alice")), "command": (sys.executable, "-c", code)})
    lines = Lines()
    await hive.backend.create(spec)
    await hive.backend.start(spec, lines)
    assert await lines.next_with("HARNESS") == sys.prefix
    assert await asyncio.wait_for(hive.backend.wait("alice"), 10) == 0


NO_CAPS = "0000000000000000"


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return dict(line.split(":", 1) for line in status.read().splitlines())


async def test_an_agent_holds_no_capability_and_every_way_out_fails(hive: Hive) -> None:
    # The escape that worked while bwrap ran agents as root with every
    # capability: remount the read-only host view, or reach any inode of the
    # host filesystem through a file handle.
    secret = hive.root / "host-secret"
    secret.write_text("the operator's key")
    secret.chmod(0o600)
    report = await hive.run_report(
        hive.spec("alice", "escape"),
        {"read": ["/etc/shadow", str(secret)], "write": ["/usr/escaped", "/etc/escaped"]},
    )
    status = report["status"]
    uid = str(UIDS["alice"])
    assert status["Uid"].split() == [uid] * 4
    assert status["Gid"].split() == [uid] * 4
    assert status["Groups"] == ""
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert status[field] == NO_CAPS, field
    assert status["NoNewPrivs"] == "1"
    assert report["remount"].startswith("exit ") and report["remount"] != "exit 0"
    assert report["bind"] != "exit 0"
    assert report["userns_remount"] != "exit 0"  # inherited mounts stay locked read-only
    assert report["open_by_handle_at"] == "Operation not permitted"
    assert report["read"]["/etc/shadow"] == "ERR PermissionError"
    assert report["read"][str(secret)].startswith("ERR")  # hidden, and not the agent's
    assert report["write"] == {"/usr/escaped": "OSError", "/etc/escaped": "OSError"}
    assert not any(map(os.path.lexists, ["/usr/escaped", "/etc/escaped"]))


async def test_seen_from_the_host_every_agent_process_is_its_own_uid_without_capabilities(
    hive: Hive,
) -> None:
    spec = hive.spec("bob", "tree")
    lines = Lines()
    await hive.backend.create(spec)
    await hive.backend.start(spec, lines)
    await lines.next_with("TREE ")
    status = await hive.backend.status("bob")
    assert status.pid is not None
    init = next(pid for pid, parent in descendants(status.pid) if parent == status.pid)
    agent = [pid for pid in sandbox_pids(status.pid) if pid != init]
    assert len(agent) == 3  # the probe, its child, the escapee
    for pid in agent:
        fields = proc_status(pid)
        assert fields["Uid"].split() == [str(UIDS["bob"])] * 4, pid
        assert fields["CapEff"].strip() == NO_CAPS and fields["CapPrm"].strip() == NO_CAPS
        assert fields["CapBnd"].strip() == NO_CAPS
    # Its directories are its own, and nobody else's.
    for path in spec.own_dirs:
        info = path.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (UIDS["bob"], 0o700)


async def test_a_sandbox_runs_at_the_niceness_its_spec_names(hive: Hive) -> None:
    report = await hive.run_report(hive.spec("alice", "report", nice=10), {})
    assert report["nice"] == 10
