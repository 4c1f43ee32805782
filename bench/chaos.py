"""Crash benchmarks: the core, a harness and a container killed -9, again and again.

Prints one JSON line. Three parts, each with its own cycle count (default 100):

core_*       a real ``hive-c0re`` killed -9 at random moments while several
             connections send (host.sock as the operator, agent sockets as agents;
             half of them with an idempotency ``key``) and one receiver leases and
             acks. After each kill the core restarts on the same state; senders
             reconnect and send again what went unanswered (a keyed send again
             with its key). At the end, from hive.db:
               core_lost                acknowledged sends not stored (target 0)
               core_keyed_duplicates    keyed sends stored more than once (target 0)
               core_unkeyed_duplicates  unkeyed sends stored twice because the
                                        answer was lost (expected: not a failure)
               core_mismatched          answers whose id is not the stored message's
               core_delivery_lost       messages marked delivered the receiver never saw
harness_*    a ``hive-ag3nt serve --engine fake`` whose scripted turns take
             ``--turn-seconds``, killed -9 mid-turn (or just after one) and restarted:
               harness_unhandled        messages never handled (target 0)
               harness_unexplained      turns started beyond 1 + the kills that hit
                                        that message (target 0)
container_*  a bwrap container (fake engine) under an in-process core, its sandbox
             SIGKILLed from the host while it works through a burst of messages;
             the lifecycle restarts it (crash policy tuned so it never gives up):
               container_unhandled      messages never handled (target 0)
               container_restarts       restarts the lifecycle made (= cycles)
Both of these also count *_redelivered (turns started again after a kill),
*_handled_twice (a kill between a turn's end and its ack: at-least-once) and
*_dead_letters (messages the core gave up on; a crash is not the message's
fault, so target 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hyperhive.client import Client, RemoteError
from hyperhive.errors import HiveError

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

READY_TIMEOUT: Final = 30.0
WAIT: Final = 120.0  # bound on every wait for the hive to catch up
RETRY: Final = 0.02  # a client's pause before it tries a dead core again
UP_MIN, UP_MAX = 0.05, 0.5  # how long the core runs between kills (uniform)
Result = dict[str, float | int | str | bool]


# -- processes -----------------------------------------------------------------


def hive_env(base: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HYPERHIVE_STATE_DIR": str(base / "s"),
        "HYPERHIVE_RUN_DIR": str(base / "r"),
        "HYPERHIVE_LOG_LEVEL": "WARNING",
        **extra,
    }


async def spawn(argv: Sequence[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """Start a process in its own group and wait for its ready line (bounded)."""
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=err, start_new_session=True
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT)
    if b"ready" not in line:
        kill9(proc)
        raise RuntimeError(f"{argv[2]} did not start ({line!r}); see {log}")
    return proc


async def start_core(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    argv = [sys.executable, "-m", "hyperhive.daemons.c0re", "serve", "--no-containers",
            "--no-dashboard", "--log-level", "WARNING"]  # fmt: skip
    return await spawn(argv, env, log)


def kill9(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


async def terminate(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        kill9(proc)
        await proc.wait()


async def until(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` (a benchmark may poll; tests wait on events) up to WAIT s."""
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def call(socket: Path, op: str, **args: Any) -> Any:
    async with await Client.connect(socket) as client:
        return await client.call(op, **args)


# -- part (a): the core killed under concurrent sends ------------------------------


@dataclass
class Sender:
    name: str  # unique among connections: bodies and keys carry it
    socket: Path
    keyed: bool
    acked: list[tuple[str, int]] = field(default_factory=list)  # body, answered id
    interrupted: int = 0  # sends whose connection broke before the answer came


async def run_sender(sender: Sender, to: str, stop: asyncio.Event) -> None:
    client: Client | None = None
    seq = 0
    while not stop.is_set():
        seq += 1
        body = f"{sender.name} {seq}"
        args: dict[str, str] = {"to": to, "body": body}
        if sender.keyed:
            args["key"] = f"{sender.name}-{seq}"
        while True:  # until this send is answered: the same body (and key) again
            try:
                if client is None:
                    client = await Client.connect(sender.socket)
                got = await client.call("send", **args)
                break
            except RemoteError as exc:
                if exc.code not in ("busy", "shutting_down"):
                    raise
                await asyncio.sleep(RETRY)
            except (HiveError, OSError):
                if client is not None:
                    sender.interrupted += 1
                    await client.close()
                    client = None
                await asyncio.sleep(RETRY)
        sender.acked.append((body, got["id"]))
    if client is not None:
        await client.close()


async def run_receiver(socket: Path, stop: asyncio.Event, seen: list[int]) -> None:
    """Lease and ack everything for ``socket``'s agent; after ``stop``, drain and end."""
    client: Client | None = None
    while True:
        try:
            if client is None:
                client = await Client.connect(socket)
            got = await client.call("recv", wait=0 if stop.is_set() else 1.0, lease=True)
            if got is None:
                if stop.is_set():
                    await client.close()
                    return
                continue
            seen.append(got["message"]["id"])
            await client.call("ack", lease=got["lease"])
        except RemoteError:
            raise
        except (HiveError, OSError):
            if client is not None:
                await client.close()
                client = None
            await asyncio.sleep(RETRY)


async def probe_keys(host: Path) -> str:
    """Whether this core has idempotent sends: ``idempotent``, ``unsupported`` or
    ``not idempotent`` (a retried keyed send stored a second message)."""
    async with await Client.connect(host) as op:
        try:
            first = await op.call("send", to="sink", body="probe", key="probe")
        except RemoteError as exc:
            if exc.code == "bad_request":
                return "unsupported"
            raise
        again = await op.call("send", to="sink", body="probe", key="probe")
    return "idempotent" if again["id"] == first["id"] else "not idempotent"


def senders_for(run: Path, per_kind: int, keyed: bool) -> list[Sender]:
    kinds = (True, False) if keyed else (False,)
    found = []
    for with_key in kinds:
        tag = "k" if with_key else "u"
        for i in range(per_kind):
            found.append(Sender(f"op-{tag}{i}", run / "host.sock", with_key))
            found.append(Sender(f"s{tag}{i}", run / "agents" / f"s{tag}{i}" / "mcp.sock", with_key))
    return found


async def core_chaos(base: Path, cycles: int, per_kind: int, rng: random.Random) -> Result:
    # Agents are throttled (20 msg/s): lift it, the point is a busy core.
    big = str(10**9)
    env = hive_env(base, HYPERHIVE_SEND_RATE=big, HYPERHIVE_SEND_BURST=big,
                   HYPERHIVE_UNDELIVERED_QUOTA=big)  # fmt: skip
    log, run = base / "core.log", base / "r"
    core = await start_core(env, log)
    await call(run / "host.sock", "agent_add", name="sink")
    for tag in "ku":
        for i in range(per_kind):
            await call(run / "host.sock", "agent_add", name=f"s{tag}{i}", allow_send=["sink"])
    keys = await probe_keys(run / "host.sock")
    senders = senders_for(run, per_kind, keyed=keys == "idempotent")
    stop, drain, seen = asyncio.Event(), asyncio.Event(), list[int]()
    tasks = [asyncio.create_task(run_sender(s, "sink", stop)) for s in senders]
    receiver = asyncio.create_task(run_receiver(run / "agents" / "sink" / "mcp.sock", drain, seen))
    began = time.monotonic()
    for _ in range(cycles):
        await asyncio.sleep(rng.uniform(UP_MIN, UP_MAX))  # a random moment of a busy core
        kill9(core)
        await core.wait()
        core = await start_core(env, log)
    stop.set()  # the core is up: every sender finishes the send it has in hand
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    drain.set()  # nothing more is sent: the receiver empties the inbox and ends
    await asyncio.wait_for(receiver, WAIT)
    elapsed = time.monotonic() - began
    await terminate(core)
    result: Result = {"core_cycles": cycles, "core_keys": keys, "core_s": round(elapsed, 1)}
    return result | tally_core(base / "s" / "hive.db", senders, seen)


def tally_core(db: Path, senders: list[Sender], seen: list[int]) -> Result:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, body, recipient, delivered_at FROM messages").fetchall()
    ids: dict[str, list[int]] = {}
    for mid, body, _, _ in rows:
        ids.setdefault(body, []).append(mid)
    lost = mismatched = 0
    extra = Counter[bool]()
    for sender in senders:
        for body, mid in sender.acked:
            stored = ids.get(body, [])
            lost += not stored
            mismatched += bool(stored) and mid not in stored
            extra[sender.keyed] += max(0, len(stored) - 1)
    to_sink = [(mid, delivered) for mid, _, to, delivered in rows if to == "sink"]
    received = set(seen)
    result: Result = {
        "core_acked": sum(len(s.acked) for s in senders),
        "core_interrupted": sum(s.interrupted for s in senders),
        "core_lost": lost,
        "core_keyed_duplicates": extra[True],
        "core_unkeyed_duplicates": extra[False],
        "core_mismatched": mismatched,
        "core_delivery_lost": sum(1 for mid, d in to_sink if d is not None and mid not in received),
        "core_undelivered": sum(1 for _, d in to_sink if d is None),
        "core_redelivered": len(seen) - len(received),
    }
    return result


# -- part (b): a harness killed mid-turn ---------------------------------------------


def harness_main(argv: list[str]) -> int:
    """``chaos.py harness SECONDS serve …``: the real ``hive-ag3nt`` whose fake engine
    takes SECONDS per turn, so a kill can land in the middle of one."""
    from hyperhive.agent.engine import EngineEvent
    from hyperhive.agent.fake_engine import ScriptedEngine, Step
    from hyperhive.daemons import ag3nt as agent_main

    seconds = float(argv[0])

    async def work() -> None:
        await asyncio.sleep(seconds)  # models the time a real turn takes

    def script(prompt: str) -> Sequence[Step]:
        return [work, EngineEvent("assistant", {"text": "handled"})]

    agent_main.ENGINES["fake"] = lambda settings, credentials, note: ScriptedEngine(script)
    return agent_main.run("agent", argv[1:])


def read_only(db: Path) -> sqlite3.Connection:
    """A reader that never checkpoints, deletes or creates an agent's files: a read-write
    connection closing last once took a restarting harness's WAL from under it (it
    died on "attempt to write a readonly database")."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


class TurnLog:
    """The turns in an agent's history.db, read as they come (a cursor on the event id,
    so a poll costs the new rows only, not the whole history)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.started, self.ended = Counter[int](), Counter[int]()  # per message id
        self.last: tuple[str, int] | None = None  # the last turn event and its message
        self._cursor = 0
        self._message_of: dict[int, int] = {}  # turn_start event id -> message id

    def read(self) -> TurnLog:
        if not self.db.exists():
            return self
        with contextlib.closing(read_only(self.db)) as conn:
            try:
                rows = conn.execute(
                    "SELECT id, kind, data FROM events WHERE id > ?"
                    " AND kind IN ('turn_start', 'turn_end') ORDER BY id",
                    (self._cursor,),
                ).fetchall()
            except sqlite3.OperationalError:  # the harness has only just created it
                return self
        for eid, kind, text in rows:
            self._cursor, data = eid, json.loads(text)
            if kind == "turn_start" and "message_id" in data:
                self._message_of[eid] = data["message_id"]
                self.started[data["message_id"]] += 1
                self.last = (kind, data["message_id"])
            elif kind == "turn_end" and data.get("turn") in self._message_of:
                mid = self._message_of[data["turn"]]
                self.ended[mid] += bool(data.get("ok"))
                self.last = (kind, mid)
        return self

    @property
    def starts(self) -> int:
        return self.started.total()

    async def until_started(self, count: int) -> None:
        await until(lambda: self.read().starts >= count, f"turn {count} to start")

    async def until_handled(self, messages: list[int]) -> None:
        await until(lambda: all(self.read().ended[m] for m in messages), "every message handled")

    def tally(self, prefix: str, messages: list[int], hive_db: Path) -> Result:
        self.read()
        started, ended = self.started, self.ended
        return {
            f"{prefix}_messages": len(messages),
            f"{prefix}_unhandled": sum(1 for m in messages if not ended[m]),
            f"{prefix}_redelivered": sum(started[m] - 1 for m in messages if started[m] > 1),
            f"{prefix}_handled_twice": sum(1 for m in messages if ended[m] > 1),
            f"{prefix}_dead_letters": dead_letters(hive_db),
        }


def dead_letters(db: Path) -> int:
    """Messages the core gave up on (a crash is no failure of the message: target 0)."""
    with contextlib.closing(read_only(db)) as conn:
        try:
            count: int = conn.execute(
                "SELECT count(*) FROM messages WHERE dead_at IS NOT NULL"
            ).fetchone()[0]
        except sqlite3.OperationalError:  # a core from before dead letters
            return 0
    return count


@dataclass
class Agent:
    argv: list[str]
    env: dict[str, str]
    log: Path
    turns: TurnLog
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await spawn(self.argv, self.env, self.log)

    async def kill(self) -> None:
        assert self.proc is not None
        kill9(self.proc)
        await self.proc.wait()


def harness_agent(base: Path, env: dict[str, str], turn_seconds: float) -> Agent:
    argv = [sys.executable, __file__, "harness", str(turn_seconds), "serve", "--engine", "fake",
            "--name", "w", "--socket", str(base / "r" / "agents" / "w" / "mcp.sock"),
            "--state", str(base / "w"), "--claude-dir", str(base / "claude"),
            "--port", "0"]  # fmt: skip
    # Its own empty workspace: the harness snapshots it around every turn, and the
    # default (/work) may be a big tree on a CI host.
    (base / "work").mkdir()
    env = {**env, "HYPERHIVE_AGENT_WORK": str(base / "work")}
    return Agent(argv, env, base / "harness.log", TurnLog(base / "w" / "history.db"))


async def harness_chaos(base: Path, cycles: int, turn_seconds: float, rng: random.Random) -> Result:
    env = hive_env(base)
    core = await start_core(env, base / "core.log")
    host = base / "r" / "host.sock"
    await call(host, "agent_add", name="w")
    agent = harness_agent(base, env, turn_seconds)
    turns, sent = agent.turns, list[int]()
    mid_turn, after_turn = Counter[int](), Counter[int]()
    began = time.monotonic()
    for _ in range(cycles):
        while len(sent) - len(+turns.read().ended) < 4:  # always work to be in the middle of
            sent.append((await call(host, "send", to="w", body=f"job {len(sent)}"))["id"])
        await agent.start()
        await turns.until_started(turns.starts + rng.randint(1, 3))
        # A random moment of that turn, or just past it (between its end and its ack,
        # or the next turn's start).
        await asyncio.sleep(rng.uniform(0, 1.5 * turn_seconds))
        await agent.kill()
        last = turns.read().last
        assert last is not None
        (mid_turn if last[0] == "turn_start" else after_turn)[last[1]] += 1
    await agent.start()
    await turns.until_handled(sent)
    assert agent.proc is not None
    await terminate(agent.proc)
    elapsed = time.monotonic() - began
    await terminate(core)
    # A message may start once more for each kill that hit it mid-turn, or between
    # its turn's end and its ack; any other start is a redelivery without cause.
    allowed = {m: 1 + mid_turn[m] + after_turn[m] for m in sent}
    return {
        "harness_cycles": cycles,
        "harness_s": round(elapsed, 1),
        "harness_kills_mid_turn": mid_turn.total(),
        "harness_kills_after_turn": after_turn.total(),
        "harness_unexplained": sum(max(0, turns.started[m] - allowed[m]) for m in sent),
    } | turns.tally("harness", sent, base / "s" / "hive.db")


# -- part (c): a container killed from outside ---------------------------------------


async def next_state(events: AsyncIterator[dict[str, Any]], agent: str, states: set[str]) -> str:
    async with asyncio.timeout(WAIT):
        async for event in events:
            mine = event.get("type") == "agent_state" and event.get("agent") == agent
            if mine and event.get("state") in states:
                return str(event["state"])
    raise RuntimeError("the bus closed")


async def container_chaos(base: Path, cycles: int, burst: int, rng: random.Random) -> Result:
    from hyperhive.backends.registry import choose
    from hyperhive.config import Config
    from hyperhive.core.hive import Hive
    from hyperhive.core.supervision import Policy

    config = Config(state_dir=base / "s", run_dir=base / "r")
    backend = choose("bwrap", work_dir=config.state_dir / "backend",
                     hide=(config.state_dir, config.run_dir))  # fmt: skip
    # The stock policy gives up after 5 crashes in 5 minutes, backing off up to
    # 30 s: right for a real hive, but this one is killed on purpose.
    policy = Policy(max_crashes=cycles + 10, backoff_start=0.05, backoff_max=0.05)
    env = {"HYPERHIVE_ENGINE": "fake", "HYPERHIVE_LOG_LEVEL": "WARNING"}
    hive = Hive(config, backend, env=env, policy=policy)
    await hive.start(manager=False)
    try:
        return await kill_containers(hive, cycles, burst, rng)
    finally:
        await hive.shutdown(grace=5)


async def kill_containers(hive: Hive, cycles: int, burst: int, rng: random.Random) -> Result:
    host = hive.config.host_socket
    turns = TurnLog(hive.config.state_dir / "agents" / "w" / "state" / "history.db")
    await call(host, "spawn", name="w")
    sent: list[int] = []
    mid_turn = 0
    events = hive.bus.subscribe().__aiter__()
    began = time.monotonic()
    for _ in range(cycles):
        before = turns.read().starts
        async with await Client.connect(host) as op:
            while len(sent) - len(+turns.ended) < burst:  # work to be busy with at the kill
                sent.append((await op.call("send", to="w", body=f"job {len(sent)}"))["id"])
        await turns.until_started(before + rng.randint(1, 3))
        await asyncio.sleep(rng.uniform(0, 0.05))  # a random moment of that work
        pid = (await hive.lifecycle.backend.status("w")).pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)  # from the host, as the OOM killer would
        if await next_state(events, "w", {"restarting", "failed"}) == "failed":
            break
        last = turns.read().last  # the sandbox is gone and its successor not yet started
        mid_turn += last is not None and last[0] == "turn_start"
        await next_state(events, "w", {"running"})
    await turns.until_handled(sent)
    elapsed = time.monotonic() - began
    record = hive.lifecycle.records.get("w")
    assert record is not None
    result: Result = {
        "container_cycles": cycles,
        "container_s": round(elapsed, 1),
        "container_restarts": record.restarts,
        "container_state": str(record.state),
        "container_kills_mid_turn": mid_turn,
    }
    return result | turns.tally("container", sent, hive.config.state_dir / "hive.db")


# -- the command line ----------------------------------------------------------------


async def run(args: argparse.Namespace) -> Result:
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="hhc", dir="/tmp"))
    parts: dict[str, Callable[[Path], Awaitable[Result]]] = {
        "core": lambda base: core_chaos(base, args.core_cycles, args.senders, rng),
        "harness": lambda base: harness_chaos(base, args.harness_cycles, args.turn_seconds, rng),
        "container": lambda base: container_chaos(base, args.container_cycles, args.burst, rng),
    }
    result: Result = {"seed": args.seed}
    for name in args.parts.split(","):
        base = root / name
        base.mkdir()
        result |= await parts[name](base)
    return result


def main() -> int:
    if sys.argv[1:2] == ["harness"]:
        return harness_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="core,harness,container")
    parser.add_argument("--core-cycles", type=int, default=100)
    parser.add_argument("--harness-cycles", type=int, default=100)
    parser.add_argument("--container-cycles", type=int, default=100)
    parser.add_argument("--senders", type=int, default=2, help="connections per kind")
    parser.add_argument("--turn-seconds", type=float, default=0.2)
    parser.add_argument("--burst", type=int, default=5, help="messages per container cycle")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    # The in-process core of the container part logs each crash it handles; the
    # numbers say it better.
    logging.getLogger("hyperhive").setLevel(logging.ERROR)
    began = time.monotonic()
    result = asyncio.run(run(args))
    print(json.dumps(result | {"seconds": round(time.monotonic() - began, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
