"""Times ``GET /api/agents`` back to back, in a process of its own, so what is timed is the
server and not the benchmark's own busy event loop (bench/scale.py drives 200 agents).

``python bench/api_sampler.py PORT TOKEN LEAST``: prints ``ready`` after the first answer,
samples until a line arrives on stdin and at least LEAST answers are timed, then prints the
latencies in seconds as one JSON list.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time


class Http:
    """A keep-alive HTTP/1.1 client for the dashboard's JSON views (as small as can be)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> bytes:
        if self._conn is None:
            self._conn = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._conn
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"GET {path}: {head.splitlines()[0]!r}")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        if length is None:
            raise RuntimeError(f"GET {path}: no content-length")
        return await reader.readexactly(int(length[1]))


async def sample(port: int, token: str, least: int) -> list[float]:
    http = Http(port, token)
    await http.get("/api/agents")
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.run_in_executor(None, sys.stdin.readline)
    latencies: list[float] = []
    while not stop.done() or len(latencies) < least:
        began = time.perf_counter()
        await http.get("/api/agents")
        latencies.append(time.perf_counter() - began)
    return latencies


if __name__ == "__main__":
    port, token, least = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    print(json.dumps(asyncio.run(sample(port, token, least))), flush=True)
