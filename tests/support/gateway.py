"""Reaching an agent's ``api.sock`` (the core's model gateway) from a test."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Final

import httpx

from hyperhive.core.hive import Hive

WAIT: Final = 20.0
BASE: Final = "http://gateway"  # the host part is not looked at: the socket is the agent


def api_socket(hive: Hive, name: str) -> Path:
    path = hive.gateway.socket(name)
    assert path is not None, f"{name} has no api.sock"
    return path


def client(sock: Path) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=str(sock))
    return httpx.AsyncClient(transport=transport, base_url=BASE, timeout=WAIT)


def message(*, stream: bool = False, text: str = "hello") -> dict[str, Any]:
    return {
        "model": "claude-fake-1",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


async def raw_exchange(sock: Path, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the gateway closes it."""
    reader, writer = await asyncio.open_unix_connection(sock)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(WAIT):
            return await reader.read()
    finally:
        writer.close()


def error_of(body: bytes) -> dict[str, Any]:
    payload = json.loads(body)
    assert payload["type"] == "error", payload
    error: dict[str, Any] = payload["error"]
    return error
