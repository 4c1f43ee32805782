"""Harness benchmark: a real ``hive-c0re`` and a real ``hive-ag3nt serve`` (fake engine).

Prints one JSON line:
  idle_rss_mib   resident memory of the idle harness process (target <= 60),
                 with the fake engine and with the Claude engine before its first turn
  wake_p50_ms    from a message's arrival at the core (its created_at) to the
  wake_p99_ms    harness's turn_start event (target p99 <= 20)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from hyperhive.client import Client


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def turns_done(port: int, count: int, started: asyncio.Event) -> None:
    """Follow the agent's SSE stream until ``count`` turns have ended."""
    ended = 0
    async with (
        httpx.AsyncClient(timeout=60) as http,
        http.stream("GET", f"http://127.0.0.1:{port}/events") as sse,
    ):
        started.set()
        async for line in sse.aiter_lines():
            if line.startswith("data:") and '"turn_end"' in line:
                ended += 1
                if ended == count:
                    return


async def measure(run: Path, port: int, messages: int) -> None:
    host = run / "host.sock"
    async with await Client.connect(host) as op:
        for _ in range(messages):
            listening = asyncio.Event()
            done = asyncio.create_task(turns_done(port, 1, listening))
            await asyncio.wait_for(listening.wait(), 30)
            await op.call("send", to="bench", body="wake up")
            await asyncio.wait_for(done, 30)


def start_agent(base: Path, env: dict[str, str], engine: str, port: int) -> subprocess.Popen[bytes]:
    agent = subprocess.Popen(
        [sys.executable, "-m", "hyperhive.daemons.ag3nt", "serve", "--engine", engine,
         "--name", "bench", "--socket", str(base / "r/agents/bench/mcp.sock"),
         "--state", str(base / engine), "--claude-dir", str(base / "claude"),
         "--port", str(port)],
        env={**env, "HYPERHIVE_LOG_LEVEL": "WARNING"}, stdout=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert agent.stdout is not None and b"ready" in agent.stdout.readline()
    return agent


def idle_rss(base: Path, env: dict[str, str], engine: str, port: int) -> float:
    agent = start_agent(base, env, engine, port)
    try:
        return rss_mib(agent.pid)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)


def turn_starts(db: Path) -> dict[int, float]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT ts, data FROM events WHERE kind = 'turn_start'").fetchall()
    return {json.loads(data)["message_id"]: ts for ts, data in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hhbh", dir="/tmp"))
    env = {
        **os.environ,
        "HYPERHIVE_STATE_DIR": str(base / "s"),
        "HYPERHIVE_RUN_DIR": str(base / "r"),
    }
    core = subprocess.Popen(
        [sys.executable, "-m", "hyperhive.daemons.c0re", "serve", "--no-containers",
         "--no-dashboard", "--log-level", "WARNING"],
        env=env, stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    agent: subprocess.Popen[bytes] | None = None
    try:
        assert core.stdout is not None and core.stdout.readline().startswith(b"hive-c0re ready")
        subprocess.run(
            [sys.executable, "-m", "hyperhive.cli.main", "agents", "add", "bench"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        idle_claude = idle_rss(base, env, "claude", free_port())
        port = free_port()
        agent = start_agent(base, env, "fake", port)
        idle = rss_mib(agent.pid)
        asyncio.run(measure(base / "r", port, args.messages))
        starts = turn_starts(base / "fake" / "history.db")
        with sqlite3.connect(base / "s" / "hive.db") as conn:
            created = dict(conn.execute("SELECT id, created_at FROM messages").fetchall())
        waits = [(starts[mid] - created[mid]) * 1000 for mid in starts]
    finally:
        for proc in (agent, core):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    cuts = statistics.quantiles(waits, n=100)
    print(
        json.dumps(
            {
                "idle_rss_mib": round(idle, 1),
                "idle_rss_claude_engine_mib": round(idle_claude, 1),
                "wake_p50_ms": round(statistics.median(waits), 3),
                "wake_p99_ms": round(cuts[98], 3),
                "messages": len(waits),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
