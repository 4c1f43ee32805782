"""Gateway: what the core's model gateway adds to a streamed Messages API request.

Three processes: the fake upstream (tests/support/fake_anthropic.py, on loopback), a real
``hive-c0re serve --no-containers`` whose env points it there with a key, and this one,
the client (httpx). ``--requests`` streamed requests go one at a time, alternating
directly to the upstream and through an agent's ``api.sock``:

ttfb_ms            {direct, gateway, added} x {p50, p99}: from sending a request until the
                   first byte of its body (``message_start``) is read
total_ms           the same until its last byte (``message_stop``) is read
added_*            gateway minus direct at that percentile (the target: <= 2 ms at p99)
core_cpu_ms        the core's CPU time (user + system) per request through it, in the
                   latency run: what the gateway costs, whatever else loads the machine
throughput_rps     {direct, gateway}: streamed requests answered per second with
                   ``--concurrency`` (16) clients at once, ``--throughput-requests`` in all,
                   spread over ``--agents`` agents' sockets (the per-agent cap is 4)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import httpx

from hyperhive.client import Client

TESTS: Final = Path(__file__).resolve().parents[1] / "tests"
READY_TIMEOUT: Final = 30.0
KEY: Final = "sk-ant-bench-key"
LIMITS: Final = httpx.Limits(max_connections=16, max_keepalive_connections=16)
BODY: Final = {
    "model": "claude-opus-4-5",
    "max_tokens": 256,
    "stream": True,
    "messages": [{"role": "user", "content": "hello " * 200}],
}


# -- the upstream, in a process of its own -----------------------------------------------


async def serve_upstream() -> None:
    sys.path.insert(0, str(TESTS))
    from support.fake_anthropic import FakeAnthropic, RecordedRequest, Reply, reply_text

    def script(request: RecordedRequest) -> Reply:
        return reply_text("a streamed answer of a few words " * 8)

    async with FakeAnthropic(script) as fake:
        fake.requests = _Discard()  # a long run must not keep every request
        print(f"ready {fake.port}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


class _Discard(list[Any]):
    def append(self, item: Any) -> None:
        return None


async def start(argv: list[str], env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT)).decode()
    if "ready" not in line:
        proc.kill()
        raise RuntimeError(f"{argv} did not start: {line!r}")
    return proc, line


async def stop(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()


# -- measuring ----------------------------------------------------------------------------


async def one(http: httpx.AsyncClient, headers: dict[str, str]) -> tuple[float, float]:
    """(ttfb, total) in seconds for one streamed request."""
    began = time.perf_counter()
    first = None
    async with http.stream("POST", "/v1/messages", json=BODY, headers=headers) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"status {answer.status_code}: {(await answer.aread())[:200]!r}")
        seen = b""
        async for chunk in answer.aiter_raw():
            if first is None:
                first = time.perf_counter()
            seen += chunk
    if b"message_stop" not in seen:
        raise RuntimeError("a stream ended early")
    assert first is not None
    return first - began, time.perf_counter() - began


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def figures(direct: list[float], gateway: list[float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        d, g = pct(direct, q) * 1000, pct(gateway, q) * 1000
        out |= {f"direct_{name}": round(d, 3), f"gateway_{name}": round(g, 3)}
        out[f"added_{name}"] = round(g - d, 3)
    out["mean_added"] = round((statistics.fmean(gateway) - statistics.fmean(direct)) * 1000, 3)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def latency(direct: httpx.AsyncClient, gateway: httpx.AsyncClient, n: int, core: int) -> Any:
    auth = {"x-api-key": KEY}
    placeholder = {"x-api-key": "hyperhive-gateway"}
    for _ in range(20):  # warm both paths: connections, caches
        await one(direct, auth)
        await one(gateway, placeholder)
    runs: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
    cpu = cpu_seconds(core)
    for _ in range(n):
        runs["direct"].append(await one(direct, auth))
        runs["gateway"].append(await one(gateway, placeholder))
    ttfb = figures([r[0] for r in runs["direct"]], [r[0] for r in runs["gateway"]])
    total = figures([r[1] for r in runs["direct"]], [r[1] for r in runs["gateway"]])
    core_cpu = round((cpu_seconds(core) - cpu) * 1000 / n, 3)
    return {"ttfb_ms": ttfb, "total_ms": total, "core_cpu_ms": core_cpu}


async def throughput(clients: list[httpx.AsyncClient], key: str, n: int, width: int) -> float:
    left = n
    headers = {"x-api-key": key}

    async def worker(i: int) -> None:
        nonlocal left
        http = clients[i % len(clients)]
        while left > 0:
            left -= 1
            await one(http, headers)

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(width)))
    return round(n / (time.perf_counter() - began), 1)


def uds(path: Path) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=str(path), limits=LIMITS)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60)


async def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    upstream, line = await start([sys.executable, __file__, "--upstream"], dict(os.environ))
    port = int(line.split()[1])
    env = {
        **os.environ,
        "HYPERHIVE_STATE_DIR": str(base / "s"),
        "HYPERHIVE_RUN_DIR": str(base / "r"),
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANTHROPIC_API_KEY": KEY,
    }
    env.pop("HYPERHIVE_UPSTREAM_URL", None)
    try:
        core, _ = await start(
            [sys.executable, "-m", "hyperhive.daemons.c0re", "serve", "--no-containers",
             "--no-dashboard", "--log-level", "WARNING"], env,
        )  # fmt: skip
    except BaseException:
        await stop(upstream)  # else it outlives the run
        raise
    try:
        names = [f"bench-{i}" for i in range(args.agents)]
        async with await Client.connect(base / "r" / "host.sock") as host:
            for name in names:
                await host.call("agent_add", name=name)
        sockets = [base / "r" / "agents" / name / "api.sock" for name in names]
        # NODELAY as the gateway's own client (and Node's) have it: else 40 ms delayed ACKs.
        nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        tcp = httpx.AsyncHTTPTransport(socket_options=nodelay, limits=LIMITS)
        direct = httpx.AsyncClient(transport=tcp, base_url=f"http://127.0.0.1:{port}", timeout=60)
        gateways = [uds(path) for path in sockets]
        try:
            result: dict[str, Any] = await latency(direct, gateways[0], args.requests, core.pid)
            result["throughput_rps"] = {
                "direct": await throughput(
                    [direct], KEY, args.throughput_requests, args.concurrency
                ),
                "gateway": await throughput(
                    gateways, "hyperhive-gateway", args.throughput_requests, args.concurrency
                ),
            }
        finally:
            for http in (direct, *gateways):
                await http.aclose()
    finally:
        await stop(core)
        await stop(upstream)
    result["params"] = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "throughput_requests": args.throughput_requests,
        "agents": args.agents,
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--throughput-requests", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        asyncio.run(serve_upstream())
        return 0
    base = Path(tempfile.mkdtemp(prefix="hhg", dir="/tmp"))
    try:
        result = asyncio.run(run(args, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
