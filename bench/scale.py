"""Scale: ``--agents`` agents (default 200) on one host, spawned, idle, busy and watched.

A real ``hive-c0re serve`` (``--backend bwrap`` by default) runs the agents on the fake
engine, with its dashboard on a free loopback port behind a known operator token. Then:

spawn_to_all_running_s   from the first ``spawn`` on host.sock (``--concurrency`` at once)
                         until every agent is as ``running_means`` says: its container
                         ``running`` and the probe message sent to it right after its
                         spawn acked (a harness acks only after its ``turn_end``)
pss_per_idle_agent_mib   mean PSS (/proc/<pid>/smaps_rollup) of each agent's harness and
                         its descendants, idle; ``bwrap_pss_per_agent_mib`` is the two bwrap
                         processes around each one, shown apart (not in the figure)
core_rss_mib             the core's RSS at the end of the run
all_turns_done_s         one message to every agent at once, until none is pending
dashboard_api_p99_ms     ``GET /api/agents`` (Bearer token, keep-alive), back to back all
                         through those turns; ``_idle`` the same with nothing happening
sse_fanout_p99_ms        ``--sse-clients`` on ``/events``; a message to ``operator`` sent
                         from an agent's socket, until each client has read its frame
bind_errors              agents whose harness said it cannot listen for its page (its
                         output as the ``logs`` op keeps it, or a notice in its history)
left_running             processes of the run alive after the core's SIGTERM drain (target 0)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from chaos import Result, call, hive_env, kill9, read_only, spawn
from hyperhive.client import Client
from hyperhive.errors import HiveError

WAIT: Final = 600.0  # bound on each phase
IDLE_S: Final = 5.0  # settling before the idle measurements
SSE_EVENTS: Final = 100
MARKER: Final = re.compile(rb"scale-sse-(\d+)")
BIND_TEXT: Final = "cannot listen"
SRC: Final = Path(__file__).resolve().parents[1] / "src"


# -- processes and memory -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def descendants(root: int) -> dict[int, list[str]]:
    """Every process below ``root``, with its argv."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, list[str]] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            found[pid] = [a.decode(errors="replace") for a in argv if a]
    return found


def proc_mib(pid: int, file: str = "smaps_rollup", field: str = "Pss:") -> float:
    """A kB figure of /proc/<pid>/<file> in MiB (PSS by default); 0 once it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def memory(core: int, count: int) -> Result:
    """PSS of the harnesses (with their children) and, apart, of the bwraps around them."""
    tree = descendants(core)
    harness: dict[int, float] = {}
    bwrap = 0.0
    for pid, argv in tree.items():
        if argv and argv[0].endswith("bwrap"):
            bwrap += proc_mib(pid)
        elif "hyperhive.daemons.ag3nt" in argv:
            harness[pid] = proc_mib(pid) + sum(proc_mib(c) for c in descendants(pid))
    return {
        "harnesses": len(harness),
        "pss_per_idle_agent_mib": round(sum(harness.values()) / max(1, len(harness)), 2),
        "pss_max_agent_mib": round(max(harness.values(), default=0.0), 2),
        "bwrap_pss_per_agent_mib": round(bwrap / max(1, count), 2),
    }


def left_running(pids: set[int], base: Path) -> int:
    """Processes of the run still alive: from its tree as it was, or naming its dirs."""
    alive = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if int(entry.name) in pids or str(base).encode() in (entry / "cmdline").read_bytes():
                alive.add(int(entry.name))
    return len(alive - {os.getpid()})


async def drain(core: asyncio.subprocess.Process) -> float:
    """SIGTERM and the core's drain (bounded); the seconds it took."""
    began = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        core.terminate()
    try:
        await asyncio.wait_for(core.wait(), 120)
    except TimeoutError:
        kill9(core)
        await core.wait()
    return time.monotonic() - began


# -- the core's sockets and the dashboard ----------------------------------------------


async def until(check: Callable[[], Awaitable[bool]], what: str, every: float = 0.1) -> float:
    """Await ``check`` every ``every`` s until it holds (bounded); when it did."""
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(every)  # a benchmark polls; tests wait on events
    return time.monotonic()


async def all_settled(op: Client, names: list[str]) -> bool:
    """Every agent's container running and nothing pending for any of them."""
    status = await op.call("status")
    if any(status["pending"].get(n) for n in names):
        return False
    rows = await op.call("agents")
    running = {r["name"] for r in rows if (r["container"] or {}).get("state") == "running"}
    return set(names) <= running


class Sampler:
    """``GET /api/agents`` timed back to back by bench/api_sampler.py, a process of its own."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, least: int) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("api_sampler.py")),
            str(self.port), self.token, str(least),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._proc.stdout is not None
        ready = await asyncio.wait_for(self._proc.stdout.readline(), WAIT)
        if ready.strip() != b"ready":
            raise RuntimeError(f"the API sampler did not start: {ready!r}")

    async def stop(self) -> list[float]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(b"stop\n")
        await self._proc.stdin.drain()
        out, _ = await asyncio.wait_for(self._proc.communicate(), WAIT)
        latencies: list[float] = json.loads(out.decode().splitlines()[-1])
        return latencies


async def sample_api(port: int, token: str, least: int) -> list[float]:
    sampler = Sampler(port, token)
    await sampler.start(least)
    return await sampler.stop()


async def sample_op(host: Path, count: int) -> list[float]:
    """The ``agents`` op on host.sock, ``count`` times: the core's part of the view."""
    latencies = []
    async with await Client.connect(host) as op:
        for _ in range(count):
            began = time.perf_counter()
            await op.call("agents")
            latencies.append(time.perf_counter() - began)
    return latencies


def p99_ms(latencies: list[float]) -> float:
    if len(latencies) < 2:
        return round(1000 * max(latencies, default=0.0), 1)
    return round(1000 * statistics.quantiles(latencies, n=100, method="inclusive")[98], 1)


# -- the phases -------------------------------------------------------------------------


async def spawn_all(host: Path, names: list[str], concurrency: int) -> float:
    """Spawn every agent (``concurrency`` at once), each sent a probe once spawned."""
    gate = asyncio.Semaphore(concurrency)

    async def one(name: str) -> None:
        async with gate:
            await call(host, "spawn", name=name, config='allow_send = ["*"]\n')
            await call(host, "send", to=name, body="probe")

    began = time.monotonic()
    await asyncio.gather(*(one(n) for n in names))
    spawned = time.monotonic() - began
    async with await Client.connect(host) as op:
        done = await until(lambda: all_settled(op, names), "every agent running", 0.2)
    print(f"spawned in {spawned:.1f}s, all running in {done - began:.1f}s", file=sys.stderr)
    return done - began


async def turns(host: Path, names: list[str], port: int, token: str) -> tuple[float, list[float]]:
    """One message to every agent at once, ``/api/agents`` sampled until all are done."""
    sampler = Sampler(port, token)
    await sampler.start(least=50)
    began = time.monotonic()
    clients = [await Client.connect(host) for _ in range(8)]
    try:
        await asyncio.gather(
            *(clients[i % 8].call("send", to=n, body=f"turn {n}") for i, n in enumerate(names))
        )
        async with await Client.connect(host) as op:
            done = await until(lambda: all_settled(op, names), "every turn done", 0.05)
    finally:
        for client in clients:
            await client.close()
    return done - began, await sampler.stop()


async def sse_client(port: int, token: str, sent: dict[int, float], got: list[float],
                     ready: asyncio.Event, seen: dict[int, int]) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    try:
        async for line in reader:
            if line.startswith(b"event: hello"):
                ready.set()
            elif line.startswith(b"data:") and (found := MARKER.search(line)):
                at = time.perf_counter()
                number = int(found[1])
                got.append(at - sent[number])
                seen[number] = seen.get(number, 0) + 1
    finally:
        writer.close()


async def sse_fanout(port: int, token: str, run: Path, names: list[str], clients: int) -> Result:
    """``clients`` on ``/events``; messages to the operator, each until all have it."""
    sent: dict[int, float] = {}
    seen: dict[int, int] = {}
    got: list[float] = []
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [
        asyncio.create_task(sse_client(port, token, sent, got, ready, seen)) for ready in readies
    ]
    try:
        for ready in readies:
            await asyncio.wait_for(ready.wait(), 60)
        for i in range(SSE_EVENTS):
            async with await Client.connect(
                run / "agents" / names[i % len(names)] / "mcp.sock"
            ) as a:
                sent[i] = time.perf_counter()
                await a.call("send", to="operator", body=f"scale-sse-{i}")

            async def arrived(number: int = i) -> bool:
                return seen.get(number, 0) >= clients

            await until(arrived, f"SSE event {i} at every client", 0.002)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"sse_fanout_p99_ms": p99_ms(got), "sse_fanout_max_ms": round(1000 * max(got), 1)}


async def bind_errors(host: Path, state: Path, names: list[str]) -> int:
    failed = set()
    async with await Client.connect(host) as op:
        for name in names:
            lines = await op.call("logs", name=name, lines=2000)
            if any(BIND_TEXT in line for line in lines):
                failed.add(name)
    for name in names:
        db = state / "agents" / name / "state" / "history.db"
        with contextlib.suppress(sqlite3.Error), contextlib.closing(read_only(db)) as conn:
            texts = conn.execute("SELECT data FROM events WHERE kind = 'notice'").fetchall()
            if any(BIND_TEXT in text for (text,) in texts):
                failed.add(name)
    return len(failed)


# -- the run ----------------------------------------------------------------------------


async def start_spy(pid: int, out: str) -> asyncio.subprocess.Process:
    """py-spy sampling the core (collapsed stacks, idle and GIL waits included) through the
    burst of turns: where the core's time goes while every agent works."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--format", "raw", "--output", out, "--idle",
        "--rate", "250", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def measure(core: asyncio.subprocess.Process, base: Path, args: argparse.Namespace,
                  port: int, token: str) -> Result:  # fmt: skip
    host, run, state = base / "r" / "host.sock", base / "r", base / "s"
    names = [f"a{i}" for i in range(args.agents)]
    result: Result = {"agents": args.agents, "backend": args.backend, "running_means": (
        "container running and a probe message acked (acked only after its turn_end)"
    )}  # fmt: skip
    result["spawn_to_all_running_s"] = round(await spawn_all(host, names, args.concurrency), 2)
    await asyncio.sleep(IDLE_S)  # let the harnesses settle after their first turn
    if args.nice_agents:
        for pid in descendants(core.pid):  # an experiment: agents below the core
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, args.nice_agents)
    result |= memory(core.pid, args.agents)
    idle = await sample_api(port, token, least=50)
    result["dashboard_api_idle_p99_ms"] = p99_ms(idle)
    result["dashboard_api_idle_p50_ms"] = round(1000 * statistics.median(idle), 1)
    result["agents_op_idle_p99_ms"] = p99_ms(await sample_op(host, 50))
    spy = await start_spy(core.pid, args.spy) if args.spy else None
    took, busy = await turns(host, names, port, token)
    if spy is not None:  # py-spy writes its samples on SIGINT
        spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 30)
    result["all_turns_done_s"] = round(took, 2)
    result["dashboard_api_p99_ms"] = p99_ms(busy)
    result["dashboard_api_busy_p50_ms"] = round(1000 * statistics.median(busy), 1)
    result["dashboard_api_samples"] = len(busy)
    result |= await sse_fanout(port, token, run, names, args.sse_clients)
    result["bind_errors"] = await bind_errors(host, state, names)
    result["core_rss_mib"] = round(proc_mib(core.pid, "status", "VmRSS:"), 1)
    return result


async def scale(base: Path, args: argparse.Namespace) -> Result:
    port, token = free_port(), secrets.token_hex(24)
    env = hive_env(
        base,
        HYPERHIVE_ENGINE="fake",
        HYPERHIVE_OPERATOR_TOKEN=token,
        # This tree's code, in the core and (forwarded) in every harness, even when the
        # venv holds an installed copy rather than an editable one.
        PYTHONPATH=args.src,
        HYPERHIVE_FORWARD_ENV="PYTHONPATH",
    )
    profile = ["-m", "cProfile", "-o", args.profile_core] if args.profile_core else []
    argv = [sys.executable, *profile, "-m", "hyperhive.daemons.c0re", "serve",
            "--backend", args.backend, "--no-manager", "--listen", f"127.0.0.1:{port}",
            "--log-level", "WARNING"]  # fmt: skip
    core = await spawn(argv, env, base / "core.log")
    pids: set[int] = {core.pid}
    try:
        result = await measure(core, base, args, port, token)
    finally:
        pids |= set(descendants(core.pid))
        drained = await drain(core)
    return result | {"drain_s": round(drained, 1), "left_running": left_running(pids, base)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--backend", choices=("bwrap", "process"), default="bwrap")
    parser.add_argument("--sse-clients", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8, help="spawns at once")
    parser.add_argument("--profile-core", help="write the core's cProfile stats here")
    parser.add_argument("--spy", help="py-spy the core through the turns, stacks to here")
    parser.add_argument("--src", default=str(SRC), help="the tree whose code runs")
    parser.add_argument("--keep", action="store_true", help="keep the state dir")
    parser.add_argument("--nice-agents", type=int, default=0, help="renice agents to this")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hhscale", dir="/tmp"))
    try:
        result = asyncio.run(scale(base, args))
    except (HiveError, OSError, RuntimeError) as exc:
        print(f"scale failed: {exc!r} (see {base})", file=sys.stderr)
        return 1
    print(json.dumps(result))
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
