"""What socket clients can make a real ``hive-c0re`` spend, and what it gives back.

Prints one JSON line:
  rss_idle_mib        the daemon's RSS with 16 agents registered, no clients
  rss_partial_mib     its peak RSS while 500 clients each hold a 1 MiB unfinished line
  rss_after_mib       its RSS once the line timeout has cut them all off
  partial_cut_s       from the first holder's connect until the last one is cut off
  attack_cycles_per_s connect + ``recv wait=3600`` + close cycles, 20 clients at once
  status_ms_attack    ``status`` on a fresh host.sock connection during that attack (max)
  status_ms_after     the same once the attack is over (median of 20)

Run against a daemon whose RLIMIT_NOFILE is 1024, the stock soft limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hyperhive.client import Client

AGENTS = 16
NOFILE = 1024
RECV_FOREVER = b'{"id":1,"op":"recv","args":{"wait":3600}}\n'


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


async def status_ms(host: Path) -> float:
    started = time.perf_counter()
    async with await Client.connect(host) as op:
        await op.call("status")
    return (time.perf_counter() - started) * 1000


async def hold_partial(path: Path, payload: bytes) -> None:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(payload)
        await writer.drain()
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    finally:
        writer.close()


async def partial_lines(run_dir: Path, pid: int, holders: int) -> dict[str, float]:
    payload = b"x" * (1 << 20)
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(
            hold_partial(run_dir / "agents" / f"a{i % AGENTS}" / "mcp.sock", payload)
        )
        for i in range(holders)
    ]
    peak = rss_mib(pid)
    while not all(t.done() for t in tasks):
        peak = max(peak, rss_mib(pid))
        await asyncio.sleep(0.05)
    cut = time.perf_counter() - started
    await asyncio.gather(*tasks)
    await asyncio.sleep(1.0)  # let the core finish closing before measuring
    return {"rss_partial_mib": peak, "rss_after_mib": rss_mib(pid), "partial_cut_s": round(cut, 2)}


async def fd_attack(run_dir: Path, cycles: int) -> dict[str, float]:
    path = run_dir / "agents" / "a0" / "mcp.sock"
    host = run_dir / "host.sock"

    async def abandon(n: int) -> None:
        for _ in range(n):
            with contextlib.suppress(OSError):  # refused past the cap
                _, writer = await asyncio.open_unix_connection(str(path))
                writer.write(RECV_FOREVER)
                await writer.drain()
                writer.close()
                await writer.wait_closed()

    during: list[float] = []
    started = time.perf_counter()
    attack = asyncio.gather(*(abandon(cycles // 20) for _ in range(20)))
    while not attack.done():
        during.append(await status_ms(host))
    await attack
    elapsed = time.perf_counter() - started
    async with await Client.connect(host) as op:
        while (await op.call("status"))["waiting"]:
            pass
    after = [await status_ms(host) for _ in range(20)]
    return {
        "attack_cycles_per_s": round(cycles / elapsed),
        "status_ms_attack": round(max(during), 2),
        "status_ms_after": round(statistics.median(after), 2),
    }


async def run(run_dir: Path, pid: int, holders: int, cycles: int) -> dict[str, float | int]:
    async with await Client.connect(run_dir / "host.sock") as op:
        for i in range(AGENTS):
            await op.call("agent_add", name=f"a{i}")
    result: dict[str, float | int] = {"rss_idle_mib": rss_mib(pid)}
    result |= await partial_lines(run_dir, pid, holders)
    result |= await fd_attack(run_dir, cycles)
    return result | {"holders": holders, "cycles": cycles, "nofile": NOFILE}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=500)
    parser.add_argument("--cycles", type=int, default=5000)
    parser.add_argument("--line-timeout", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hhb", dir="/tmp"))
    env = {
        **os.environ,
        "HYPERHIVE_STATE_DIR": str(base / "s"),
        "HYPERHIVE_RUN_DIR": str(base / "r"),
        "HYPERHIVE_LINE_TIMEOUT": str(args.line_timeout),
    }

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    daemon = subprocess.Popen(
        [sys.executable, "-m", "hyperhive.daemons.c0re", "serve", "--no-containers",
         "--no-dashboard", "--log-level", "WARNING"],
        env=env, stdout=subprocess.PIPE, start_new_session=True, preexec_fn=limit,
    )  # fmt: skip
    try:
        assert daemon.stdout is not None
        ready = daemon.stdout.readline()
        if not ready.startswith(b"hive-c0re ready"):
            print("hive-c0re did not start", file=sys.stderr)
            return 1
        result = asyncio.run(run(base / "r", daemon.pid, args.holders, args.cycles))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
