"""Broker benchmark against a real ``hive-c0re`` over real unix sockets.

Prints one JSON line:
  send_per_s   durable sends per second, several concurrent clients on host.sock
  wake_p50_ms  time from a send's answer to the waiting receiver's answer
  wake_p99_ms  (50 receivers long-polling, one message in flight at a time)

Targets on a 2-core machine: send_per_s >= 5000, wake_p99_ms <= 5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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

    clients = [await Client.connect(host) for _ in range(senders)]
    per_client = sends // senders

    async def blast(client: Client) -> None:
        for i in range(per_client):
            await client.call("send", to="sink", body=f"bench message {i}")

    started = time.perf_counter()
    await asyncio.gather(*(blast(c) for c in clients))
    send_per_s = per_client * senders / (time.perf_counter() - started)
    for c in clients:
        await c.close()

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
        "wake_p50_ms": round(statistics.median(latencies), 3),
        "wake_p99_ms": round(cuts[98], 3),
        "receivers": RECEIVERS,
        "senders": senders,
        "sends": per_client * senders,
        "wakes": wakes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--sends", type=int, default=20000)
    parser.add_argument("--wakes", type=int, default=2000)
    args = parser.parse_args()
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
            "hyperhive.core.main",
            "serve",
            "--no-containers",
            "--no-dashboard",
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
            return 1
        result = asyncio.run(run(args.senders, args.sends, args.wakes, base / "r"))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
