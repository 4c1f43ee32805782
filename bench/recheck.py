"""What the bounded re-check costs, and what a lost signal costs a wake.

With a shared PostgreSQL store a message for another host's agent reaches that
host's core as a NOTIFY (core/routing.py); a lost one is caught by
:meth:`Routing.recheck`, which runs every 5 s (core/db/pg_signals.py) and after each
reconnection, on the core's event loop: its time is time nothing else runs.

Prints one JSON line per ``--messages`` count M (N agents of this host, M undelivered
messages for them, every one already queued: the steady state, nothing missing):
  store            sqlite (a temporary file) or postgresql (``--database URL``)
  agents, messages N and M
  start_ms         building the broker, which queues all M (what a core's start pays)
  recheck_p50_ms   one ``recheck()`` that finds nothing, over ``--runs`` runs
  recheck_max_ms

and with ``--database`` one more line:
  lost_signal_delay_s   the worst of ``--lost`` messages committed without a NOTIFY
  lost_signal_delays_s  (a plain INSERT) for an agent of a running beta core, from the
                        commit until its waiting receiver had it; each <= the 5 s re-check

``--database URL`` names a PostgreSQL server whose role may CREATE DATABASE: each part
runs in a temporary database ``hh_bench_<random>``, dropped afterwards (bench/broker.py).
Nothing of the URL is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from broker import BenchError, exit_on_sigterm, start_core, temporary_database
from hyperhive.client import Client
from hyperhive.core.broker import Broker
from hyperhive.core.bus import EventBus
from hyperhive.core.db import Database, open_store
from hyperhive.core.db.pg_signals import RECHECK_SECONDS
from hyperhive.core.registry import Registry

HOST: Final = "here"
# message_log.INSERT without RETURNING: sqlite's executemany takes no statement with rows.
INSERT: Final = (
    "INSERT INTO messages (sender, recipient, body, kind, payload, created_at, delivered_at,"
    " key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
LOST_AGENT: Final = "lost"


def fill(conn: Database, agents: list[str], count: int) -> None:
    """``count`` more undelivered messages, round-robin over ``agents``, in one commit."""
    now = time.time()
    rows = [
        ("operator", agents[i % len(agents)], f"waiting {i}", "message", None, now, None, None)
        for i in range(count)
    ]
    if rows:
        with conn.transaction():
            conn.executemany(INSERT, rows)


def measure(conn: Database, registry: Registry, runs: int) -> dict[str, float]:
    started = time.perf_counter()
    # As hive.py builds it: the broker queues every undelivered message of this host's.
    broker = Broker(conn, registry, EventBus(), max_body=65536, lease_seconds=300.0)
    start_ms = (time.perf_counter() - started) * 1000
    times: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        found = broker.routing.recheck()
        times.append((time.perf_counter() - started) * 1000)
        if found:
            raise BenchError(f"recheck found {found} messages in a steady state")
    return {
        "start_ms": round(start_ms, 3),
        "recheck_p50_ms": round(statistics.median(times), 3),
        "recheck_max_ms": round(max(times), 3),
    }


def recheck_costs(
    target: str | Path, store: str, agents: int, counts: list[int], runs: int
) -> None:
    conn = open_store(target)
    try:
        registry = Registry(conn, HOST)
        names = [f"a{i}" for i in range(agents)]
        for name in names:
            registry.add(name)
        have = 0
        for count in sorted(counts):
            fill(conn, names, count - have)
            have = count
            line = {"store": store, "agents": agents, "messages": count, "runs": runs}
            print(json.dumps({**line, **measure(conn, registry, runs)}), flush=True)
    finally:
        conn.close()


async def lost_signals(url: str, beta_run: Path, beta_host: Path, samples: int) -> list[float]:
    async with await Client.connect(beta_host) as op:
        await op.call("agent_add", name=LOST_AGENT)
    conn = open_store(url)
    delays: list[float] = []
    try:
        async with await Client.connect(beta_run / "agents" / LOST_AGENT / "mcp.sock") as me:
            for i in range(samples):
                waiting = asyncio.create_task(me.call("recv", wait=4 * RECHECK_SECONDS))
                await me.call("ping")  # beta has the receive parked before the commit
                # The store's plain execute: a commit and no pg_notify, as when a core
                # died between the two.
                row = ("operator", LOST_AGENT, f"unsignalled {i}", "message", None)
                conn.execute(INSERT, (*row, time.time(), None, None))
                committed = time.perf_counter()
                got = await waiting
                if got is None:
                    raise BenchError(f"a message without its signal never arrived ({i})")
                delays.append(time.perf_counter() - committed)
    finally:
        conn.close()
    return delays


def lost_signal_delay(server: str, samples: int) -> dict[str, object]:
    base = Path(tempfile.mkdtemp(prefix="hhr", dir="/tmp"))
    failed = True
    try:
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(temporary_database(server))
            beta = start_core(base, "beta", "normal", url, stack)
            delays = asyncio.run(lost_signals(url, beta.run_dir, beta.host_socket, samples))
        failed = False
    finally:
        if not failed:  # else the core's log stays for a look
            shutil.rmtree(base, ignore_errors=True)
    return {
        "store": "postgresql",
        "lost_signal_delay_s": round(max(delays), 3),
        "lost_signal_delays_s": [round(d, 3) for d in delays],
        "recheck_interval_s": RECHECK_SECONDS,
    }


def main() -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", metavar="URL", help="a PostgreSQL server (default: sqlite)")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--messages", default="0,1000,10000", help="comma-separated counts")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--lost", type=int, default=3, help="unsignalled messages to time")
    args = parser.parse_args()
    counts = [int(c) for c in args.messages.split(",")]
    try:
        if args.database is None:
            with tempfile.TemporaryDirectory(prefix="hhr", dir="/tmp") as tmp:
                recheck_costs(Path(tmp) / "hive.db", "sqlite", args.agents, counts, args.runs)
        else:
            with temporary_database(args.database) as url:
                recheck_costs(url, "postgresql", args.agents, counts, args.runs)
            if args.lost > 0:
                print(json.dumps(lost_signal_delay(args.database, args.lost)), flush=True)
    except BenchError as exc:
        print(f"bench/recheck.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
