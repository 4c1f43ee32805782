"""Soak: a hive of agents exchanging messages for a set time, sampled for leaks.

A real ``hive-c0re`` (``--backend bwrap`` by default, or ``process``) runs
``--agents`` agents (default 20) on the fake engine, no manager. The fake engine
only echoes, so the benchmark speaks for the agents: on each agent's own socket,
for every message that agent has finished a turn on, it forwards one to a random
peer after a moment's thought (``--think`` s). ``--tokens`` messages are seeded,
so what flows is what the hive handles (never a backlog that outruns it), and
every message is a real turn in a harness (lease, turn, ack). Every ``--sample``
seconds it records the RSS of the core and of the harnesses (sum and max), the
core's open descriptors, and the size of hive.db, of the agents' history.db
files and of all their write-ahead logs. At the end it stops forwarding, lets
every inbox drain and counts what was lost.

Prints one JSON line:
  messages, rate_per_s     sends answered by the core, and their rate
  lost                     answered sends no harness finished a turn on (target 0)
  undelivered              messages left unacked in hive.db after the drain (target 0)
  <metric>                 its last sample: core_rss_mib, harness_rss_sum_mib,
                           harness_rss_max_mib, core_fds, db_mib, history_mib, wal_mib
  <metric>_per_min         its growth per minute (least squares over the samples
                           after the first fifth, the warm-up): a leak shows here
  db_bytes_per_message     hive.db's settled growth per message sent (the log is kept)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from chaos import WAIT, Result, TurnLog, call, hive_env, spawn, terminate
from hyperhive.client import Client
from hyperhive.errors import HiveError

MIB: Final = 1024 * 1024
METRICS: Final = (
    "core_rss_mib", "harness_rss_sum_mib", "harness_rss_max_mib", "core_fds", "db_mib",
    "history_mib", "wal_mib",
)  # fmt: skip
Sample = dict[str, float]


# -- what a sample measures -------------------------------------------------------


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass  # it ended between the scan and the read
    return 0.0


def harnesses(core: int) -> list[int]:
    """Pids of the harnesses below the core (its children on the process backend;
    inside bwrap's sandboxes, whose processes are still the core's descendants)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(core, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"hyperhive.daemons.ag3nt" in argv and not argv[0].endswith(b"bwrap"):
                found.append(pid)
    return found


def size_mib(paths: list[Path]) -> float:
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total / MIB


def sample(core: int, state: Path, began: float, sent: int) -> Sample:
    rss = [rss_mib(pid) for pid in harnesses(core)]
    return {
        "t": time.monotonic() - began,
        "sent": sent,
        "harnesses": len(rss),
        "core_rss_mib": rss_mib(core),
        "harness_rss_sum_mib": sum(rss),
        "harness_rss_max_mib": max(rss, default=0.0),
        "core_fds": len(os.listdir(f"/proc/{core}/fd")),
        # Without their write-ahead logs, which sqlite lets grow to ~4 MiB each and
        # then reuses: those are wal_mib, and level off instead of growing.
        "db_mib": size_mib([state / "hive.db"]),
        "history_mib": size_mib(list(state.glob("agents/*/state/history.db"))),
        "wal_mib": size_mib(list(state.glob("**/*.db-wal"))),
    }


def per_minute(samples: list[Sample], metric: str) -> float:
    """The least-squares slope of ``metric`` over time, per minute."""
    ts, ys = [s["t"] for s in samples], [s[metric] for s in samples]
    if len(ts) < 2:
        return 0.0
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    spread = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / spread


# -- the hive and its traffic ---------------------------------------------------------


@dataclass
class Traffic:
    names: list[str]
    run: Path
    state: Path
    think: float  # seconds an agent takes before it forwards, on average
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: dict[int, str] = field(default_factory=dict)  # message id -> recipient

    async def relay(self, me: str, seeds: int, rng: random.Random) -> None:
        """Speak for ``me`` on its own socket: ``seeds`` messages at first, then one
        to a random peer for every message it has finished."""
        peers = [n for n in self.names if n != me]
        log = TurnLog(self.state / "agents" / me / "state" / "history.db")
        owed, forwarded = seeds, 0
        async with await Client.connect(self.run / "agents" / me / "mcp.sock") as client:
            while not self.stop.is_set():
                for _ in range(owed):
                    body = f"from {me}: hop {len(self.sent)}"
                    got = await client.call("send", to=rng.choice(peers), body=body)
                    self.sent[got["id"]] = got["to"]
                await asyncio.sleep(rng.uniform(0.5, 1.5) * self.think)  # models its thought
                finished = log.read().ended.total()
                owed, forwarded = finished - forwarded, finished


async def start_hive(
    base: Path, backend: str, count: int
) -> tuple[asyncio.subprocess.Process, list[str]]:
    env = hive_env(base, HYPERHIVE_ENGINE="fake")  # forwarded into every container
    argv = [sys.executable, "-m", "hyperhive.daemons.c0re", "serve", "--backend", backend,
            "--no-manager", "--no-dashboard", "--log-level", "WARNING"]  # fmt: skip
    core = await spawn(argv, env, base / "core.log")
    host = base / "r" / "host.sock"
    names = [f"a{i}" for i in range(count)]
    for name in names:
        await call(host, "spawn", name=name, config='allow_send = ["*"]\n')
    await until_status(host, lambda s: set(names) <= set(s["waiting"]), "every agent to listen")
    return core, names


async def until_status(host: Path, check: Callable[[dict[str, Any]], bool], what: str) -> None:
    """Ask the core's status every 0.1 s until ``check`` holds (bounded by WAIT)."""
    async with await Client.connect(host) as op:
        deadline = time.monotonic() + WAIT
        while not check(await op.call("status")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)


def undelivered(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        count: int = conn.execute(
            "SELECT count(*) FROM messages WHERE delivered_at IS NULL"
        ).fetchone()[0]
    return count


async def soak(base: Path, args: argparse.Namespace) -> Result:
    rng = random.Random(args.seed)
    core, names = await start_hive(base, args.backend, args.agents)
    state = base / "s"
    traffic = Traffic(names, base / "r", state, args.think)
    samples: list[Sample] = []
    try:
        share, extra = divmod(args.tokens, len(names))
        relays = [
            asyncio.create_task(traffic.relay(name, share + (i < extra), rng))
            for i, name in enumerate(names)
        ]
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < args.seconds:
            samples.append(sample(core.pid, state, began, len(traffic.sent)))
            await asyncio.sleep(min(args.sample, args.seconds - elapsed))  # models the soak
        samples.append(sample(core.pid, state, began, len(traffic.sent)))
        traffic.stop.set()
        await asyncio.wait_for(asyncio.gather(*relays), WAIT)
        sending = time.monotonic() - began
        await until_status(base / "r" / "host.sock", lambda s: not s["pending"], "the drain")
        # Nothing is pending, so every message was acked, and a harness acks only
        # after its turn_end is in its history.db.
        ended = {n: TurnLog(state / "agents" / n / "state" / "history.db").read() for n in names}
        lost = sum(1 for m, to in traffic.sent.items() if not ended[to].ended[m])
    finally:
        await terminate(core)
    result = summary(samples, traffic, sending, undelivered(state / "hive.db"))
    return result | {"lost": lost, "agents": args.agents, "backend": args.backend}


def summary(samples: list[Sample], traffic: Traffic, seconds: float, left: int) -> Result:
    settled = samples[len(samples) // 5 :]  # the first fifth is the warm-up
    last = samples[-1]
    result: Result = {
        "seconds": round(seconds, 1),
        "samples": len(samples),
        "messages": len(traffic.sent),
        "rate_per_s": round(len(traffic.sent) / seconds, 1),
        "undelivered": left,
        "harnesses": int(last["harnesses"]),
    }
    for metric in METRICS:
        result[metric] = round(last[metric], 2)
        result[f"{metric}_per_min"] = round(per_minute(settled, metric), 3)
    # Per message from the settled slopes: the WAL's first growth is not the messages'.
    per_min = per_minute(settled, "sent")
    result["db_bytes_per_message"] = round(per_minute(settled, "db_mib") * MIB / max(1.0, per_min))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=20, help="messages in flight")
    parser.add_argument("--think", type=float, default=2.0, help="seconds before a forward")
    parser.add_argument("--sample", type=float, default=30, help="seconds between samples")
    parser.add_argument("--backend", choices=("bwrap", "process"), default="bwrap")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hhs", dir="/tmp"))
    try:
        result = asyncio.run(soak(base, args))
    except (HiveError, OSError, RuntimeError) as exc:
        print(f"soak failed: {exc} (see {base})", file=sys.stderr)
        return 1
    print(json.dumps(result | {"seed": args.seed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
