"""Broker benchmark against a real ``hive-c0re`` over real unix sockets.

Prints one JSON line per durability level (``--durability``; default both):
  durability        normal or full: sqlite's synchronous=NORMAL or FULL (fsync a commit);
                    PostgreSQL's synchronous_commit=off or on (wait for the WAL flush)
  store             sqlite (<state>/hive.db), or postgresql (``--database URL``)
  hosts             cores running: 1 with sqlite; 2 (alpha and beta) on PostgreSQL
  wake_scope        local (sender and receivers on one core), or cross-host
  send_per_s        durable sends per second, several concurrent clients on host.sock
  keyed_send_per_s  the same with an idempotency key on every send (as agents send)
  wake_p50_ms       time from a send's answer to the waiting receiver's answer
  wake_p99_ms       (50 receivers long-polling, one message in flight at a time)

``--database URL`` names a PostgreSQL server (any database on it, whose role may
CREATE DATABASE): each run gets a temporary database ``hh_bench_<random>`` there,
dropped afterwards; the database the URL names is only connected to. Two cores
share it: the sender and the blasts' sink on alpha, the 50 receivers on beta, so the
sends are alpha's and every wake crosses from alpha's commit to beta's receiver
(a NOTIFY, core/routing.py). Nothing of the URL is printed.

Targets on a 2-core machine, durability normal:
  sqlite      send_per_s >= 5000, wake_p99_ms <= 5
  postgresql  send_per_s >= 2000, cross-host wake_p99_ms <= 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hyperhive.client import Client

RECEIVERS = 50
SEEN_WAIT: Final = 10.0  # seconds: bound for alpha hearing of beta's agents (a signal each)
ADMIN_TIMEOUT: Final = "60s"  # CREATE/DROP DATABASE copy a template and wait for backends


class BenchError(Exception):
    """A run that could not be measured; the message never holds the URL."""


@dataclass(frozen=True)
class Core:
    name: str
    run_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path | None  # its stderr, kept out of ours on PostgreSQL (it may name the server)

    @property
    def host_socket(self) -> Path:
        return self.run_dir / "host.sock"

    def agent_socket(self, agent: str) -> Path:
        return self.run_dir / "agents" / agent / "mcp.sock"


# -- the temporary database --------------------------------------------------------


def with_dbname(url: str, dbname: str) -> str:
    """``url`` naming database ``dbname`` instead (host, user and options kept)."""
    parts = urlsplit(url)
    # A dbname in the query would win over the path: it goes.
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "dbname"])
    return urlunsplit(parts._replace(path="/" + dbname, query=query))


def _admin(url: str) -> Any:
    import psycopg  # only with --database: a sqlite run never loads the driver

    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        # psycopg's message names the server; the SQLSTATE and class say enough.
        raise BenchError(
            f"cannot connect to the --database server ({type(exc).__name__}"
            f"{', SQLSTATE ' + exc.sqlstate if exc.sqlstate else ''})"
        ) from None
    conn.execute(f"SET statement_timeout = '{ADMIN_TIMEOUT}'")
    return conn


@contextlib.contextmanager
def temporary_database(url: str) -> Iterator[str]:
    """A fresh empty database ``hh_bench_<random>`` on ``url``'s server: its URL.
    Dropped on the way out, whatever happened, with whoever still uses it."""
    import psycopg
    from psycopg import sql

    name = f"hh_bench_{secrets.token_hex(6)}"
    with _admin(url) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise BenchError(
                f"cannot CREATE DATABASE {name} ({type(exc).__name__}, SQLSTATE {exc.sqlstate})"
            ) from None
    try:
        yield with_dbname(url, name)
    finally:
        with _admin(url) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -- the cores -----------------------------------------------------------------------


def start_core(
    base: Path, name: str, durability: str, database: str | None, stack: contextlib.ExitStack
) -> Core:
    """A ``hive-c0re serve`` of its own state and run dirs, stopped when ``stack`` closes."""
    env = {
        **os.environ,
        "HYPERHIVE_STATE_DIR": str(base / name / "s"),
        "HYPERHIVE_RUN_DIR": str(base / name / "r"),
    }
    # The URL goes by the environment, not argv: a password in argv is in every `ps`.
    # A URL the shell happened to export must not turn a sqlite run into another one.
    env.pop("HYPERHIVE_DATABASE_URL", None)
    argv = [
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
    ]
    log: Path | None = None
    stderr: IO[bytes] | None = None
    if database is not None:
        env["HYPERHIVE_DATABASE_URL"] = database
        argv += ["--host-name", name]
        log = base / f"{name}.log"
        stderr = stack.enter_context(log.open("wb"))
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True
    )
    stack.callback(_stop, proc)
    core = Core(name, base / name / "r", proc, log)
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith(b"hive-c0re ready"):
        where = f" (its log: {log})" if log is not None else ""
        raise BenchError(f"hive-c0re {name} did not start{where}")
    return core


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# -- the measurements ------------------------------------------------------------------


async def run(
    senders: int, sends: int, wakes: int, alpha: Core, beta: Core
) -> dict[str, float | int]:
    """``beta`` runs the receivers; it is ``alpha`` itself with one core."""
    async with await Client.connect(alpha.host_socket) as op:
        await op.call("agent_add", name="sink")
    async with await Client.connect(beta.host_socket) as op:
        for i in range(RECEIVERS):
            await op.call("agent_add", name=f"r{i}")
    if beta is not alpha:
        await _seen_by(alpha, beta.name, [f"r{i}" for i in range(RECEIVERS)])

    per_client = sends // senders
    send_per_s = await _blast(alpha.host_socket, senders, per_client, keyed=False)
    keyed_send_per_s = await _blast(alpha.host_socket, senders, per_client, keyed=True)

    arrivals: dict[str, asyncio.Queue[float]] = {f"r{i}": asyncio.Queue() for i in range(RECEIVERS)}

    async def receive(name: str) -> None:
        async with await Client.connect(beta.agent_socket(name)) as me:
            while True:
                got = await me.call("recv", wait=60)
                if got is not None:
                    arrivals[name].put_nowait(time.perf_counter())

    receivers = [asyncio.create_task(receive(name)) for name in arrivals]
    latencies: list[float] = []
    async with await Client.connect(alpha.host_socket) as sender:
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


async def _seen_by(core: Core, host: str, names: list[str]) -> None:
    """Wait (bounded) until ``core``'s registry holds ``names`` as ``host``'s agents: the
    adds reached it as signals, and the wake phase must not time the store look-up a send
    to a name it does not know yet costs."""
    deadline = time.monotonic() + SEEN_WAIT
    async with await Client.connect(core.host_socket) as op:
        while True:
            listed = {row["name"]: row["host"] for row in await op.call("agents")}
            if all(listed.get(n) == host for n in names):
                return
            if time.monotonic() > deadline:
                missing = [n for n in names if listed.get(n) != host]
                raise BenchError(f"{core.name} never heard of {host}'s {', '.join(missing)}")
            await asyncio.sleep(0.05)


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


def exit_on_sigterm() -> None:
    """A SIGTERM ends the run through its ``finally``s: cores stopped, database dropped."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main() -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--sends", type=int, default=20000)
    parser.add_argument("--wakes", type=int, default=2000)
    parser.add_argument("--durability", choices=("normal", "full", "both"), default="both")
    parser.add_argument(
        "--database",
        metavar="URL",
        help="a PostgreSQL server to bench on, in a temporary database per run "
        "(default: sqlite, one core)",
    )
    args = parser.parse_args()
    levels = ("normal", "full") if args.durability == "both" else (args.durability,)
    for level in levels:
        try:
            result = bench(level, args.senders, args.sends, args.wakes, args.database)
        except BenchError as exc:
            print(f"bench/broker.py: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({"durability": level, **result}), flush=True)
    return 0


def bench(
    durability: str, senders: int, sends: int, wakes: int, database: str | None = None
) -> dict[str, float | int | str]:
    """One run against fresh ``hive-c0re serve --durability`` core(s): one on sqlite, or
    alpha and beta on a temporary database of ``database``'s server."""
    base = Path(tempfile.mkdtemp(prefix="hhb", dir="/tmp"))
    failed = True
    try:
        with contextlib.ExitStack() as stack:
            if database is None:
                alpha = beta = start_core(base, "alpha", durability, None, stack)
            else:
                url = stack.enter_context(temporary_database(database))
                alpha = start_core(base, "alpha", durability, url, stack)
                beta = start_core(base, "beta", durability, url, stack)
            result = asyncio.run(run(senders, sends, wakes, alpha, beta))
        failed = False
    finally:
        # A failed PostgreSQL run keeps the cores' logs for a look; nothing else.
        if not failed or database is None:
            shutil.rmtree(base, ignore_errors=True)
    two = beta is not alpha
    return {
        "store": "postgresql" if two else "sqlite",
        "hosts": 2 if two else 1,
        "wake_scope": "cross-host" if two else "local",
        **result,
    }


if __name__ == "__main__":
    sys.exit(main())
