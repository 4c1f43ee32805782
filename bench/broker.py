"""Broker benchmark against a real ``hive-c0re`` over real unix sockets.

Prints one JSON line per durability level (``--durability``; default both):
  durability        normal (synchronous=NORMAL) or full (synchronous=FULL, fsync a commit)
  send_per_s        durable sends per second, several concurrent clients on host.sock
  keyed_send_per_s  the same with an idempotency key on every send (as agents send)
  wake_p50_ms       time from a send's answer to the waiting receiver's answer
  wake_p99_ms       (50 receivers long-polling, one message in flight at a time)

Targets on a 2-core machine, durability normal: send_per_s >= 5000, wake_p99_ms <= 5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hyperhive.client import Client

RECEIVERS = 50


async def run(senders: int, sends: int, wakes: int, run_dir: Path) -> dict[str, float | int]:
    host = run_dir / "host.sock"
    async with await Client.connect(host) as op:
        await op.call("agent_add", name="sink")
        for i in range(RECEIVERS):
            await op.call("agent_add", name=f"r{i}")

    per_client = sends // senders
    send_per_s = await _blast(host, senders, per_client, keyed=False)
    keyed_send_per_s = await _blast(host, senders, per_client, keyed=True)

    arrivals: dict[str, asyncio.Queue[float]] = {f"r{i}": asyncio.Queue() for i in range(RECEIVERS)}

    async def receive(name: str) -> None:
        async with await Client.connect(run_dir / "agents" / name / "mcp.sock") as me:
            while True:
                got = await me.call("recv", wait=60)
                if got is not None:
                    arrivals[name].put_nowait(time.perf_counter())

    receivers = [asyncio.create_task(receive(name)) for name in arrivals]
    latencies: list[float] = []
    async with await Client.connect(host) as sender:
        await sender.call("ping")
        for _ in range(wakes):
            to = random.choice(list(arrivals))
            await sender.call("send", to=to, body="wake")
            answered = time.perf_counter()
            arrived = await asyncio.wait_for(arrivals[to].get(), 10)
            latencies.append((arrived - answered) * 1000)
    for task in receivers:
        task.cancel()
    await asyncio.gather(*receivers, return_exceptions=True)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "send_per_s": round(send_per_s),
        "keyed_send_per_s": round(keyed_send_per_s),
        "wake_p50_ms": round(statistics.median(latencies), 3),
        "wake_p99_ms": round(cuts[98], 3),
        "receivers": RECEIVERS,
        "senders": senders,
        "sends": per_client * senders,
        "wakes": wakes,
    }


async def _blast(host: Path, senders: int, per_client: int, *, keyed: bool) -> float:
    """Sends per second from ``senders`` concurrent clients, ``per_client`` each."""
    clients = [await Client.connect(host) for _ in range(senders)]

    async def blast(n: int, client: Client) -> None:
        for i in range(per_client):
            key = {"key": f"bench-{n}-{i}"} if keyed else {}
            await client.call("send", to="sink", body=f"bench message {i}", **key)

    started = time.perf_counter()
    await asyncio.gather(*(blast(n, c) for n, c in enumerate(clients)))
    rate = per_client * senders / (time.perf_counter() - started)
    for c in clients:
        await c.close()
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--sends", type=int, default=20000)
    parser.add_argument("--wakes", type=int, default=2000)
    parser.add_argument("--durability", choices=("normal", "full", "both"), default="both")
    args = parser.parse_args()
    levels = ("normal", "full") if args.durability == "both" else (args.durability,)
    for level in levels:
        result = bench(level, args.senders, args.sends, args.wakes)
        if result is None:
            return 1
        print(json.dumps({"durability": level, **result}), flush=True)
    return 0


def bench(durability: str, senders: int, sends: int, wakes: int) -> dict[str, float | int] | None:
    """One run against a fresh ``hive-c0re serve --durability``; None if it did not start."""
    base = Path(tempfile.mkdtemp(prefix="hhb", dir="/tmp"))
    env = {
        **os.environ,
        "HYPERHIVE_STATE_DIR": str(base / "s"),
        "HYPERHIVE_RUN_DIR": str(base / "r"),
    }
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hyperhive.daemons.c0re",
            "serve",
            "--no-containers",
            "--no-dashboard",
            "--durability",
            durability,
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert daemon.stdout is not None
        ready = daemon.stdout.readline()
        if not ready.startswith(b"hive-c0re ready"):
            print("hive-c0re did not start", file=sys.stderr)
            return None
        return asyncio.run(run(senders, sends, wakes, base / "r"))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
