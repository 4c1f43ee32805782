"""What an agent in a real bwrap sandbox can reach, asked from inside it.

A probe runs as the container's command and talks to the test over a unix socket in
its ``/run/hive`` (the one way out every sandbox has): each question names addresses
to connect to, each answer says what happened and what the sandbox's network looks
like (/proc/net/dev, /proc/net/route). Every address the tests use is on this machine:
its loopback, the stack's gateway, and its own primary IPv4.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hyperhive.backends.base import BackendError, ContainerSpec
from hyperhive.backends.bwrap import BwrapBackend
from hyperhive.backends.user_net import HOST_RESOLV
from support.backend_probe import Lines, wait_gone

BOUND = 30.0  # on every wait: a loaded 2-core machine is slow, never this slow
UID = 1_900_000_201
GATEWAY = "10.0.2.2"  # slirp4netns's gateway: with host loopback on, the host's 127.0.0.1
GATEWAY_HEX = "0202000A"  # 10.0.2.2 as /proc/net/route writes it

PROBE = r"""
import json, os, socket, sys

def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as exc:
        return errno_name(exc)

def errno_name(exc):
    import errno
    return errno.errorcode.get(exc.errno, type(exc).__name__) if exc.errno else type(exc).__name__

def routes():
    with open("/proc/net/route") as f:
        rows = [line.split() for line in f.read().splitlines()[1:]]
    return [{"iface": r[0], "dest": r[1], "gateway": r[2], "mask": r[7]} for r in rows]

def links():
    with open("/proc/net/dev") as f:
        return sorted(line.split(":")[0].strip() for line in f.read().splitlines()[2:])

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return "ERR " + type(exc).__name__

with socket.socket(socket.AF_UNIX) as s:
    s.connect(sys.argv[1])
    for line in s.makefile("rb"):
        ask = json.loads(line)
        if "exit" in ask:
            sys.exit(ask["exit"])
        s.sendall((json.dumps({
            "pid": os.getpid(),
            "links": links(),
            "routes": routes(),
            "connect": [connect(host, port) for host, port in ask.get("connect", [])],
            "resolv": read("/etc/resolv.conf"),
        }) + "\n").encode())
"""


def host_ipv4() -> str | None:
    """This machine's primary IPv4: the source address of its default route (a UDP
    connect sends nothing), else any non-loopback local address."""
    with open("/proc/net/route") as table:
        rows = [line.split() for line in table.read().splitlines()[1:]]
    for row in rows:
        if row[1] == "00000000" and row[0] != "lo":
            gateway = socket.inet_ntoa(int(row[2], 16).to_bytes(4, "little"))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.connect((gateway, 9))
                return str(udp.getsockname()[0])
    with open("/proc/net/fib_trie") as trie:
        lines = trie.read().splitlines()
    for above, line in itertools.pairwise(lines):
        address = above.split()[-1]
        if "/32 host LOCAL" in line and not address.startswith("127."):
            return address
    return None


@dataclass
class Listener:
    """A TCP listener on this machine that counts who got through."""

    server: asyncio.Server
    accepted: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])


async def listen(host: str) -> Listener:
    listener: Listener

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.accepted.set()
        writer.close()

    listener = Listener(await asyncio.start_server(on_client, host, 0))
    return listener


@dataclass
class Probe:
    """The probe in a running sandbox, on the other end of ``/run/hive/probe.sock``."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def ask(self, *connect: tuple[str, int]) -> dict[str, Any]:
        self.writer.write((json.dumps({"connect": connect}) + "\n").encode())
        async with asyncio.timeout(BOUND):
            answer: dict[str, Any] = json.loads(await self.reader.readline())
        return answer

    def exit(self, code: int) -> None:
        self.writer.write((json.dumps({"exit": code}) + "\n").encode())


@dataclass
class Sandboxes:
    root: Path
    backend: BwrapBackend
    probe: Path
    servers: list[asyncio.Server] = field(default_factory=list)

    def spec(self, name: str = "alice", **extra: Any) -> ContainerSpec:
        agent = self.root / "state" / "agents" / name
        spec = ContainerSpec(
            name=name,
            role="agent",
            socket_dir=self.root / "run" / "agents" / name,
            state_dir=agent / "state",
            claude_dir=agent / "claude",
            config_dir=self.root / "state" / "applied" / name,
            config_sha="c0ffee",
            command=(sys.executable, str(self.probe), "/run/hive/probe.sock"),
            extra_ro_binds=(self.probe.parent,),
            uid=UID,
            work_dir=agent / "work",
            **extra,
        )
        for path in spec.own_dirs:
            path.mkdir(parents=True, exist_ok=True)
        return spec

    async def start(self, spec: ContainerSpec, backend: BwrapBackend | None = None) -> Probe:
        """Start ``spec`` and return its probe once it has called in."""
        backend = backend or self.backend
        called: asyncio.Queue[Probe] = asyncio.Queue()

        async def on_probe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            called.put_nowait(Probe(reader, writer))

        path = spec.socket_dir / "probe.sock"
        server = await asyncio.start_unix_server(on_probe, path)
        self.servers.append(server)
        os.chown(path, UID, UID)  # the probe runs as the agent's uid
        if (await backend.status(spec.name)).state == "missing":
            await backend.create(spec)
        await backend.start(spec, Lines())
        async with asyncio.timeout(BOUND):
            return await called.get()


@pytest.fixture
async def sandboxes(short_dir: Path) -> AsyncIterator[Sandboxes]:
    probe = short_dir / "probe" / "probe.py"
    probe.parent.mkdir()
    probe.write_text(PROBE)
    state, run = short_dir / "state", short_dir / "run"
    backend = BwrapBackend(state / "backend", hide=(state, run), stop_timeout=5.0)
    found = Sandboxes(short_dir, backend, probe)
    yield found
    await backend.destroy("alice")
    for server in found.servers:
        server.close()


def default_routes(report: dict[str, Any]) -> list[dict[str, str]]:
    return [r for r in report["routes"] if r["dest"] == "00000000" and r["mask"] == "00000000"]


async def test_a_networked_agent_reaches_this_machines_address_but_never_its_loopback(
    sandboxes: Sandboxes,
) -> None:
    loopback = await listen("127.0.0.1")  # where the dashboard and the pages listen
    address = host_ipv4()
    public = await listen(address) if address is not None else None
    probe = await sandboxes.start(sandboxes.spec())
    net = sandboxes.backend.user_net("alice")
    assert net is not None and net.tool.kind == "slirp4netns"
    ways = [("127.0.0.1", loopback.port), (GATEWAY, loopback.port)]
    if public is not None and address is not None:
        ways.append((address, public.port))
    else:
        # No address but loopback on this machine: the gateway's own port answers, and
        # what answers is the stack refusing to hand the connection to the host's loopback.
        ways.append((GATEWAY, loopback.port))
    report = await probe.ask(*ways)
    assert report["links"] == ["lo", "tap0"], report
    assert default_routes(report) == [
        {"iface": "tap0", "dest": "00000000", "gateway": GATEWAY_HEX, "mask": "00000000"}
    ]
    own_loopback, via_gateway, outward = report["connect"]
    assert own_loopback == "ECONNREFUSED", report  # the sandbox's own, empty loopback
    # slirp4netns answers for the host's loopback at once: unreachable, not a timeout.
    assert via_gateway in ("ENETUNREACH", "ECONNREFUSED"), report
    assert not loopback.accepted.is_set()
    if public is not None:
        assert outward == "connected", report
        await asyncio.wait_for(public.accepted.wait(), BOUND)
    else:
        assert outward in ("ENETUNREACH", "ECONNREFUSED")
    loopback.server.close()
    if public is not None:
        public.server.close()


async def test_an_agent_without_network_has_only_loopback_and_its_hive_sockets(
    sandboxes: Sandboxes,
) -> None:
    loopback = await listen("127.0.0.1")
    address = host_ipv4()
    public = await listen(address) if address is not None else None
    ways = [("127.0.0.1", loopback.port), (GATEWAY, loopback.port)]
    if address is not None and public is not None:
        ways.append((address, public.port))
    # The whole exchange runs over /run/hive/probe.sock: the unix socket is its way out.
    probe = await sandboxes.start(sandboxes.spec(network=False))
    report = await probe.ask(*ways)
    assert report["links"] == ["lo"]
    assert report["routes"] == []
    # Its own loopback refuses; for anything else it has no route at all.
    assert report["connect"] == ["ECONNREFUSED"] + ["ENETUNREACH"] * (len(ways) - 1)
    assert not loopback.accepted.is_set()
    assert sandboxes.backend.user_net("alice") is None  # no stack runs for it
    loopback.server.close()
    if public is not None:
        assert not public.accepted.is_set()
        public.server.close()


def proc_stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command: state, ppid, pgrp, session, …"""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def stack_processes(pid: int) -> list[int]:
    """Host processes whose command line names sandbox ``pid``'s namespace."""
    needle = f"/proc/{pid}/ns/net".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if needle in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


async def test_the_stack_is_the_cores_child_and_goes_with_its_container(
    sandboxes: Sandboxes,
) -> None:
    backend = sandboxes.backend
    probe = await sandboxes.start(sandboxes.spec())
    net = backend.user_net("alice")
    assert net is not None
    meta = json.loads((sandboxes.root / "state" / "backend" / "h-alice.json").read_text())
    init = meta["sandbox_init"]
    assert stack_processes(init) == [net.pid]
    fields = proc_stat(net.pid)
    assert int(fields[1]) == os.getpid()  # our child
    assert int(fields[3]) == net.pid  # the leader of a session of its own
    await asyncio.wait_for(backend.stop("alice"), BOUND)
    assert net.exited.done()
    assert wait_gone([net.pid]) == []
    assert stack_processes(init) == []
    assert backend.user_net("alice") is None

    # A container that ends by itself takes its stack along too.
    probe = await sandboxes.start(sandboxes.spec())
    again = backend.user_net("alice")
    assert again is not None and again.pid != net.pid
    probe.exit(3)
    assert await asyncio.wait_for(backend.wait("alice"), BOUND) == 3
    await asyncio.wait_for(asyncio.shield(again.exited), BOUND)
    assert wait_gone([again.pid]) == []


async def test_a_killed_stack_leaves_the_agent_running_without_network(
    sandboxes: Sandboxes, caplog: pytest.LogCaptureFixture
) -> None:
    address = host_ipv4()
    public = await listen(address or "127.0.0.1")
    probe = await sandboxes.start(sandboxes.spec())
    net = sandboxes.backend.user_net("alice")
    assert net is not None
    before = await probe.ask()
    assert default_routes(before) != []
    with caplog.at_level(logging.WARNING, logger="hyperhive.backends.user_net"):
        os.kill(net.pid, 9)
        await asyncio.wait_for(asyncio.shield(net.exited), BOUND)
    after = await probe.ask((address or GATEWAY, public.port))
    assert after["pid"] == before["pid"]  # the same agent, still answering
    assert after["links"] == ["lo"]  # the stack's tap went with it
    assert default_routes(after) == []
    assert after["connect"] == ["ENETUNREACH"]
    assert not public.accepted.is_set()
    assert (await sandboxes.backend.status("alice")).state == "running"
    assert any(
        "exited" in r.getMessage() and "without network" in r.getMessage() for r in caplog.records
    )
    public.server.close()


async def test_without_a_stack_a_networked_agent_fails_to_start_with_the_packages_to_install(
    sandboxes: Sandboxes,
) -> None:
    bare = BwrapBackend(
        sandboxes.root / "state" / "backend",
        hide=(sandboxes.root / "state", sandboxes.root / "run"),
        user_net=("no-such-stack",),
    )
    assert bare.net_tool is None
    spec = sandboxes.spec()
    await bare.create(spec)
    with pytest.raises(BackendError, match=r"slirp4netns.*passt"):
        await bare.start(spec, Lines())
    assert (await bare.status("alice")).state == "stopped"  # never the host's network
    # One without network needs no stack.
    await bare.destroy("alice")
    probe = await sandboxes.start(sandboxes.spec(network=False), bare)
    assert (await probe.ask())["links"] == ["lo"]
    await bare.destroy("alice")


async def test_a_stack_that_fails_to_come_up_fails_the_start_and_kills_the_sandbox(
    sandboxes: Sandboxes,
) -> None:
    broken = sandboxes.root / "broken" / "slirp4netns"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'cannot open the tap' >&2\nexit 1\n")
    broken.chmod(0o755)
    backend = BwrapBackend(
        sandboxes.root / "state" / "backend",
        hide=(sandboxes.root / "state", sandboxes.root / "run"),
        user_net=(str(broken),),
    )
    spec = sandboxes.spec()
    called = asyncio.Event()

    async def on_probe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        called.set()

    server = await asyncio.start_unix_server(on_probe, spec.socket_dir / "probe.sock")
    sandboxes.servers.append(server)
    await backend.create(spec)
    with pytest.raises(BackendError, match=r"slirp4netns exited.*cannot open the tap"):
        await backend.start(spec, Lines())
    assert (await backend.status("alice")).state == "stopped"
    assert not called.is_set()  # the command never ran without its network
    await backend.destroy("alice")


async def test_a_host_resolver_on_loopback_is_replaced_by_the_stacks_own(
    sandboxes: Sandboxes,
) -> None:
    host = sandboxes.root / "host-resolv.conf"
    host.write_text("# the host's\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
    backend = BwrapBackend(
        sandboxes.root / "state" / "backend",
        hide=(sandboxes.root / "state", sandboxes.root / "run"),
        host_resolv=host,
    )
    probe = await sandboxes.start(sandboxes.spec(), backend)
    report = await probe.ask()
    assert report["resolv"] == (
        "# the host's\nnameserver 10.0.2.3\noptions edns0 trust-ad\nsearch lan\n"
    )
    generated = sandboxes.root / "state" / "backend" / "h-alice.resolv.conf"
    assert generated.stat().st_mode & 0o777 == 0o644
    await backend.destroy("alice")
    # Without network the host's file stays, and no file is generated.
    probe = await sandboxes.start(sandboxes.spec(network=False), backend)
    assert (await probe.ask())["resolv"] == HOST_RESOLV.read_text()
    assert not generated.exists()
    await backend.destroy("alice")
