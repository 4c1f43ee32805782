"""What a socket client can make a real ``hive-c0re`` spend, and that it is given back.

The daemons here run with RLIMIT_NOFILE 1024 (hard and soft), as on a stock
distribution, and write their log to a file the tests read afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from conftest import Daemon, stop_daemon, wait_ready
from hyperhive.client import Client
from hyperhive.config import (
    DEFAULT_AGENT_SOCKET_CONNECTIONS,
    DEFAULT_HOST_SOCKET_CONNECTIONS,
    resolve,
)
from hyperhive.core.caller import Caller
from hyperhive.core.connections import FLOOR, ConnectionBudget, budget_for_nofile
from hyperhive.core.fd_guard import BurstLog
from hyperhive.core.hive import Hive
from hyperhive.core.server import SocketServer
from hyperhive.errors import ConfigError
from hyperhive.web.server import WebServer
from support.wire import RawSocket, until_status

NOFILE = 1024
WAIT = 60.0  # bound on every wait below; a loaded 2-core machine is slow, not this slow
RECV_FOREVER = b'{"id":1,"op":"recv","args":{"wait":3600}}\n'


class Limited:
    """A real daemon started with a small descriptor limit, its log in a file."""

    def __init__(
        self, base: Path, nofile: int = NOFILE, hard: int | None = None, **env: str
    ) -> None:
        self.log = base / "c0re.log"

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard or nofile))

        full_env = {
            **os.environ,
            "HYPERHIVE_STATE_DIR": str(base / "state"),
            "HYPERHIVE_RUN_DIR": str(base / "run"),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        with self.log.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hyperhive.daemons.c0re", "serve", "--no-containers",
                 "--no-dashboard"],
                env=full_env, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                preexec_fn=limit,
            )  # fmt: skip
        self.daemon = Daemon(proc, full_env, base / "run", base / "state")
        try:
            wait_ready(self.daemon)
        except (AssertionError, AttributeError):  # its stderr is the file, not a pipe
            raise AssertionError(f"hive-c0re did not start: {self.log.read_text()}") from None

    @property
    def host(self) -> Path:
        return self.daemon.host_socket

    def agent(self, name: str) -> Path:
        return self.daemon.run_dir / "agents" / name / "mcp.sock"

    def stop(self) -> str:
        """Stop the daemon (it must exit cleanly) and return its log."""
        assert stop_daemon(self.daemon) == 0
        return self.log.read_text()


@pytest.fixture
def limited(short_dir: Path) -> Iterator[Limited]:
    running = Limited(short_dir)
    try:
        yield running
    finally:
        stop_daemon(running.daemon)


async def add_agents(host: Path, *names: str) -> None:
    async with await Client.connect(host) as op:
        for name in names:
            await op.call("agent_add", name=name)


async def timed_status(host: Path) -> float:
    """Seconds for a fresh connection to get ``status`` answered."""
    started = time.perf_counter()
    async with await Client.connect(host) as op:
        await op.call("status")
    return time.perf_counter() - started


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def fastest_idle_status(limited: Limited, idle_fds: int) -> float:
    """The fastest of a few ``status`` round trips, once the core holds no more than
    ``idle_fds`` descriptors (its count before the clients came) and three (the
    connection that asks, two more it may not have seen close yet): the bound is on
    an idle core, not on one still draining thousands of hung-up clients."""
    async with await Client.connect(limited.host) as op, asyncio.timeout(WAIT):
        while open_fds(limited.daemon.proc.pid) > idle_fds + 3:
            await op.call("ping")  # each try a round trip: the core's own pace
    # The fastest of several: one round trip may lose the CPU to a neighbour's test.
    return min([await timed_status(limited.host) for _ in range(5)])


async def open_raw(path: Path, first: bytes = b"") -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
    if first:
        writer.write(first)
        # A refused connection may be closed (its `busy` line already sent) before
        # our line arrives: the write then fails, and the answer is still there to read.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.drain()
    return reader, writer


async def read_all(reader: asyncio.StreamReader) -> list[dict[str, Any]]:
    """Every answer line until the core hangs up (a reset after the lines counts as that)."""
    answers = []
    try:
        while line := await reader.readline():
            answers.append(json.loads(line))
    except (ConnectionResetError, BrokenPipeError):
        # Our own line written after the core hung up: asyncio may then drop
        # the `busy` line it had already received.
        pass
    return answers


def assert_clean(log: str) -> None:
    assert len(log.encode()) < 1_000_000
    assert "Traceback" not in log


# -- hangups ------------------------------------------------------------------


async def test_thousands_of_abandoned_long_polls_leave_the_core_fast_and_quiet(
    limited: Limited,
) -> None:
    await add_agents(limited.host, "alice")
    idle_fds = open_fds(limited.daemon.proc.pid)

    async def abandon(cycles: int) -> None:
        for _ in range(cycles):
            # Past the cap the core hangs up first (busy), or the backlog is full.
            with contextlib.suppress(OSError):
                _, writer = await open_raw(limited.agent("alice"), RECV_FOREVER)
                writer.close()
                await writer.wait_closed()

    async with asyncio.timeout(WAIT * 3):
        await asyncio.gather(*(abandon(250) for _ in range(20)))  # 5,000 cycles
    await until_status(limited.host, lambda s: s["waiting"] == {})
    assert await fastest_idle_status(limited, idle_fds) < 0.1
    async with await Client.connect(limited.agent("alice")) as alice:
        assert await alice.call("recv", wait=0) is None  # its socket is not clogged either
    assert_clean(limited.stop())


@pytest.mark.parametrize("how", ["close", "pipelined then close", "half-close then close"])
async def test_a_client_that_hangs_up_frees_its_long_poll_at_once(
    limited: Limited, how: str
) -> None:
    await add_agents(limited.host, "alice")
    lines = RECV_FOREVER * (3 if how.startswith("pipelined") else 1)
    _, writer = await open_raw(limited.agent("alice"), lines)
    await until_status(limited.host, lambda s: s["waiting"] == {"alice": 1})
    if how.startswith("half-close"):
        writer.write_eof()
        # Half-closed is not gone: the client still waits for its answer.
        async with await Client.connect(limited.host) as op:
            assert (await op.call("status"))["waiting"] == {"alice": 1}
    writer.close()
    await writer.wait_closed()
    await until_status(limited.host, lambda s: s["waiting"] == {})
    assert_clean(limited.stop())


async def test_a_half_closed_client_still_gets_its_long_poll_answered(limited: Limited) -> None:
    await add_agents(limited.host, "alice")
    reader, writer = await open_raw(limited.agent("alice"), RECV_FOREVER)
    await until_status(limited.host, lambda s: s["waiting"] == {"alice": 1})
    writer.write_eof()
    async with await Client.connect(limited.host) as op:
        await op.call("send", to="alice", body="for the half-closed")
    async with asyncio.timeout(WAIT):
        answers = await read_all(reader)
    assert [a["result"]["message"]["body"] for a in answers] == ["for the half-closed"]
    writer.close()


# -- caps -----------------------------------------------------------------------


async def test_connections_past_an_agent_socket_s_cap_get_busy_until_others_close(
    limited: Limited,
) -> None:
    await add_agents(limited.host, "alice")
    cap = DEFAULT_AGENT_SOCKET_CONNECTIONS
    held = [await Client.connect(limited.agent("alice")) for _ in range(cap)]
    try:
        for client in held:
            assert (await client.call("ping"))["pong"]  # each one admitted
        reader, writer = await open_raw(limited.agent("alice"))
        async with asyncio.timeout(WAIT):
            answers = await read_all(reader)
        writer.close()
        assert [(a["id"], a["ok"], a["error"]["code"]) for a in answers] == [(None, False, "busy")]
        await held.pop().close()
        async with asyncio.timeout(WAIT):
            while True:  # the core frees the slot when it reads the hangup; ask until then
                reader, writer = await open_raw(limited.agent("alice"), b'{"id":2,"op":"ping"}\n')
                writer.write_eof()
                answers = await read_all(reader)
                writer.close()
                if answers and answers[0]["ok"]:
                    break
                assert [a["error"]["code"] for a in answers] in ([], ["busy"]), answers
    finally:
        for client in held:
            await client.close()
    assert_clean(limited.stop())


async def test_agents_holding_the_whole_budget_cannot_starve_the_host_socket(
    limited: Limited,
) -> None:
    names = [f"a{i}" for i in range(24)]
    await add_agents(limited.host, *names, "spare")
    budget = ConnectionBudget.create(budget_for_nofile(NOFILE), DEFAULT_HOST_SOCKET_CONNECTIONS)
    per_agent = DEFAULT_AGENT_SOCKET_CONNECTIONS
    assert len(names) * per_agent > budget.total - budget.reserve  # more than agents may hold
    idle_fds = open_fds(limited.daemon.proc.pid)
    held: list[RawSocket] = []
    try:
        for name in names:
            for _ in range(per_agent):
                held.append(await RawSocket.open(limited.agent(name), RECV_FOREVER))
        admitted = budget.total - budget.reserve
        await until_status(limited.host, lambda s: sum(s["waiting"].values()) == admitted)
        # Which ones were refused depends on the order the core accepted them in.
        pending = {asyncio.create_task(raw.answers()) for raw in held}
        refused: list[list[dict[str, Any]]] = []
        async with asyncio.timeout(WAIT):
            while len(refused) < len(held) - admitted:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                refused += [t.result() for t in done]
        for task in pending:
            task.cancel()
        assert {json.dumps(a) for a in refused} == {
            json.dumps([{"id": None, "ok": False, "error": refused[0][0]["error"]}])
        }
        assert refused[0][0]["error"]["code"] == "busy"
        assert len(pending) == admitted  # the admitted ones still wait on their recv
        # An agent with no connection at all is refused too: the hive-wide budget is spent.
        reader, writer = await open_raw(limited.agent("spare"))
        async with asyncio.timeout(WAIT):
            assert [a["error"]["code"] for a in await read_all(reader)] == ["busy"]
        writer.close()
        # The admitted long-polls are parked, the refused ones closed: an idle core.
        assert await fastest_idle_status(limited, idle_fds + len(pending)) < 0.1
    finally:
        for raw in held:
            raw.close()
    await until_status(limited.host, lambda s: s["waiting"] == {})
    assert_clean(limited.stop())


# -- timeouts -------------------------------------------------------------------


async def test_clients_holding_unfinished_lines_are_cut_off_after_the_line_timeout(
    short_dir: Path,
) -> None:
    line_timeout = 2
    running = Limited(short_dir, HYPERHIVE_LINE_TIMEOUT=str(line_timeout))
    try:
        names = [f"p{i}" for i in range(16)]
        await add_agents(running.host, *names)
        partial = b"x" * (1 << 20)  # a whole MiB, never ended by a newline

        async def hold(name: str) -> tuple[float, list[dict[str, Any]]]:
            started = time.monotonic()
            reader, writer = await open_raw(running.agent(name), partial)
            answers = await read_all(reader)
            writer.close()
            return time.monotonic() - started, answers

        async with asyncio.timeout(WAIT * 2):
            holders = [asyncio.create_task(hold(names[i % 16])) for i in range(500)]
            assert (await timed_status(running.host)) < WAIT  # answers meanwhile
            results = await asyncio.gather(*holders)
        for elapsed, answers in results:
            assert elapsed >= line_timeout
            assert [(a["id"], a["error"]["code"]) for a in answers] == [(None, "timeout")]
        async with await Client.connect(running.agent("p0")) as p0:
            assert (await p0.call("ping"))["pong"]
    finally:
        log = running.stop()
    assert_clean(log)


async def test_an_idle_connection_is_closed_but_one_waiting_on_the_core_is_not(
    short_dir: Path,
) -> None:
    running = Limited(short_dir, HYPERHIVE_IDLE_TIMEOUT="2")
    try:
        await add_agents(running.host, "alice", "bob")
        async with await Client.connect(running.host) as op:
            await op.call("send", to="bob", body="a long turn")
        idle_reader, idle_writer = await open_raw(running.agent("alice"), b'{"id":1,"op":"ping"}\n')
        async with (
            await Client.connect(running.agent("alice")) as polling,
            await Client.connect(running.agent("bob")) as leasing,
        ):
            leased = await leasing.call("recv", wait=0, lease=True)
            assert leased["message"]["body"] == "a long turn"
            # A long-poll longer than the idle timeout: the connection is waiting, not idle.
            assert await polling.call("recv", wait=5) is None
            assert (await polling.call("ping"))["pong"]
            # The harness runs a turn between recv and ack: a held lease is not idle.
            assert (await leasing.call("ack", lease=leased["lease"]))["id"] == leased["message"][
                "id"
            ]
            async with asyncio.timeout(WAIT):
                answers = await read_all(idle_reader)
            idle_writer.close()
        assert answers[0]["result"]["pong"]
        assert [(a["id"], a["error"]["code"]) for a in answers[1:]] == [(None, "timeout")]
    finally:
        log = running.stop()
    assert_clean(log)


# -- what clients send ------------------------------------------------------------


async def test_outlandish_request_ids_are_refused_plainly_without_a_traceback(
    limited: Limited,
) -> None:
    lines = [
        b'{"id":' + b"9" * 5000 + b',"op":"ping"}',
        b'{"id":"' + b"s" * 200 + b'","op":"ping"}',
        b'{"id":1.5,"op":"ping"}',
        b'{"id":' + str(2**60).encode() + b',"op":"ping"}',
        b'{"id":7,"op":"ping","args":{"n":' + b"1" * 5000 + b"}}",
        b'{"id":' + str(2**53).encode() + b',"op":"ping"}',
    ]
    reader, writer = await open_raw(limited.host, b"\n".join(lines) + b"\n")
    writer.write_eof()
    async with asyncio.timeout(WAIT):
        answers = await read_all(reader)
    writer.close()
    assert [(a["id"], a["ok"]) for a in answers] == [(None, False)] * 5 + [(2**53, True)]
    assert {a["error"]["code"] for a in answers[:5]} == {"bad_request"}
    assert all(len(a["error"]["message"]) < 300 for a in answers[:5])
    assert_clean(limited.stop())


async def test_hundreds_of_pipelined_requests_are_answered_in_order(limited: Limited) -> None:
    await add_agents(limited.host, "alice")
    requests = []
    for i in range(300):
        if i % 3 == 0:
            requests.append({"id": i, "op": "send", "args": {"to": "alice", "body": f"m{i}"}})
        elif i % 3 == 1:
            requests.append({"id": i, "op": "ping"})
        else:
            requests.append({"id": i, "op": "nope"})
    payload = b"".join(json.dumps(r).encode() + b"\n" for r in requests)
    reader, writer = await open_raw(limited.host, payload)
    writer.write_eof()
    async with asyncio.timeout(WAIT):
        answers = await read_all(reader)
    writer.close()
    assert [a["id"] for a in answers] == list(range(300))
    assert [a["ok"] for a in answers] == [i % 3 != 2 for i in range(300)]
    assert_clean(limited.stop())


async def test_when_descriptors_run_out_anyway_the_log_says_so_once(short_dir: Path) -> None:
    # A budget far above the limit, so accept() itself fails: the last line of defence.
    running = Limited(
        short_dir,
        nofile=64,
        HYPERHIVE_MAX_CONNECTIONS="1000",
        HYPERHIVE_AGENT_SOCKET_CONNECTIONS="1000",
    )
    try:
        await add_agents(running.host, "alice")
        # Each holder's long-poll is also the clock: by its end accept() has been
        # retried (once a second) a few times.
        poll = b'{"id":1,"op":"recv","args":{"wait":3}}\n'
        clients = [await open_raw(running.agent("alice"), poll) for _ in range(90)]

        async def answered(reader: asyncio.StreamReader, writer: Any) -> Any:
            line = await reader.readline()
            writer.close()  # frees a descriptor: those still queued get in
            return json.loads(line)

        async with asyncio.timeout(WAIT):
            answers = await asyncio.gather(*(answered(r, w) for r, w in clients))
        assert answers == [{"id": 1, "ok": True, "result": None}] * len(clients)
        assert (await timed_status(running.host)) < WAIT
    finally:
        log = running.stop()
    assert log.count("out of file descriptors") == 1, log
    assert_clean(log)


# -- limits at start and elsewhere ------------------------------------------------------


async def test_the_daemon_raises_its_soft_descriptor_limit_to_the_hard_one(
    short_dir: Path,
) -> None:
    running = Limited(short_dir, nofile=512, hard=NOFILE)
    log = running.stop()
    assert f"file descriptor limit: {NOFILE}" in log


def test_the_limits_can_be_set_from_the_environment() -> None:
    env = {
        "HYPERHIVE_MAX_CONNECTIONS": "100",
        "HYPERHIVE_AGENT_SOCKET_CONNECTIONS": "4",
        "HYPERHIVE_HOST_SOCKET_CONNECTIONS": "8",
        "HYPERHIVE_LINE_TIMEOUT": "3",
        "HYPERHIVE_IDLE_TIMEOUT": "60",
    }
    config = resolve(state_dir="/s", run_dir="/r", env=env, uid=1000)
    assert (config.max_connections, config.agent_socket_connections) == (100, 4)
    assert (config.host_socket_connections, config.line_timeout, config.idle_timeout) == (8, 3, 60)
    assert resolve(state_dir="/s", run_dir="/r", env={}, uid=1000).max_connections is None
    with pytest.raises(ConfigError, match="HYPERHIVE_LINE_TIMEOUT"):
        resolve(state_dir="/s", run_dir="/r", env={"HYPERHIVE_LINE_TIMEOUT": "0"}, uid=1000)


async def test_the_web_server_answers_503_past_its_concurrency_limit() -> None:
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    server = WebServer.for_app(app, "127.0.0.1", 0, limit_concurrency=2, timeout_keep_alive=60)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(WAIT):
            await server.ready.wait()
        url = f"http://127.0.0.1:{server.port}/"
        async with httpx.AsyncClient() as first, httpx.AsyncClient() as second:
            assert (await first.get(url)).status_code == 200  # and its connection stays open
            assert (await second.get(url)).status_code == 503
    finally:
        server.should_exit = True
        async with asyncio.timeout(WAIT):
            await serving


# -- seams and plain logic ------------------------------------------------------------


async def test_a_socket_can_be_handed_to_an_agent_s_own_uid(hive: Hive) -> None:
    uid = 1900000123
    path = hive.config.run_dir / "agents" / "bob" / "mcp.sock"
    sockets = hive.sockets
    bob_caller = Caller("bob", "agent")
    server = SocketServer(
        path,
        bob_caller,
        sockets.dispatch,
        sockets.agent_limits,
        hive.connections,
        hive.broker,
        owner=uid,
    )
    await server.start()
    try:
        for entry, mode in ((path, 0o600), (path.parent, 0o700)):
            info = entry.stat()
            assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (uid, uid, mode)
        async with await Client.connect(path) as bob:
            assert (await bob.call("whoami"))["name"] == "bob"
    finally:
        await server.close(grace=1.0)


def test_the_budget_leaves_descriptors_for_everything_else() -> None:
    assert budget_for_nofile(1024) == 768
    assert budget_for_nofile(65536) == 49152
    assert budget_for_nofile(256) == FLOOR
    assert budget_for_nofile(resource.RLIM_INFINITY) > 65536


def test_agents_together_never_take_the_host_s_reserve() -> None:
    budget = ConnectionBudget.create(10, host_cap=4)
    assert [budget.admit(host=False) for _ in range(7)] == [True] * 6 + [False]
    assert [budget.admit(host=True) for _ in range(5)] == [True] * 4 + [False]
    budget.release(host=True)
    assert not budget.admit(host=False)  # the freed slot is the host's
    budget.release(host=False)
    assert budget.admit(host=False)
    assert budget.open == 9  # the host slot freed above stays free for the host


def test_a_burst_of_failures_is_told_once_then_counted_once_a_window() -> None:
    burst = BurstLog(window=60.0)
    told = [burst.note(t) for t in (0.0, 1.0, 2.0, 59.0, 60.0, 61.0, 119.0, 120.5)]
    assert told == [("first", 0), None, None, None, ("more", 4), None, None, ("more", 3)]
    assert burst.note(300.0) == ("first", 0)  # a quiet window ends the burst
