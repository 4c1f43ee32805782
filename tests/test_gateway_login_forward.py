"""The harness's loopback forwarder to the core's api.sock, over real sockets: bytes both
ways as they come, a half-close passed on, a bounded number of connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from hyperhive.agent.api_forward import ApiForwarder

WAIT = 10.0


@contextlib.asynccontextmanager
async def unix_server(path: Path, handler: object) -> AsyncIterator[asyncio.Server]:
    server = await asyncio.start_unix_server(handler, path=str(path))  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.close()


async def test_a_request_goes_through_whole_and_the_answer_comes_back_after_a_half_close(
    short_dir: Path,
) -> None:
    sock = short_dir / "api.sock"

    async def answer_at_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = await reader.read()  # until the client half-closes
        writer.write(b"got " + str(len(got)).encode())
        await writer.drain()
        writer.close()

    forwarder = ApiForwarder(sock)
    async with unix_server(sock, answer_at_eof):
        port = await forwarder.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * 300_000)
        await writer.drain()
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), WAIT)
        writer.close()
    await forwarder.close()
    assert answer == b"got 300000"


async def test_a_streamed_answer_arrives_chunk_by_chunk_before_it_ends(short_dir: Path) -> None:
    sock = short_dir / "api.sock"
    more = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"event: one\n\n")
        await writer.drain()
        await more.wait()
        writer.write(b"event: two\n\n")
        writer.close()

    forwarder = ApiForwarder(sock)
    async with unix_server(sock, stream):
        reader, writer = await asyncio.open_connection("127.0.0.1", await forwarder.start())
        first = await asyncio.wait_for(reader.readuntil(b"\n\n"), WAIT)
        more.set()
        rest = await asyncio.wait_for(reader.read(), WAIT)
        writer.close()
    await forwarder.close()
    assert (first, rest) == (b"event: one\n\n", b"event: two\n\n")


async def test_connections_over_the_cap_are_closed_and_a_gone_gateway_hangs_up(
    short_dir: Path,
) -> None:
    sock = short_dir / "api.sock"
    held = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.set()
        await reader.read()
        writer.close()

    forwarder = ApiForwarder(sock, max_connections=1)
    async with unix_server(sock, hold):
        port = await forwarder.start()
        _, first = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(held.wait(), WAIT)
        second, _ = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(second.read(), WAIT) == b""  # refused: at the cap
        assert forwarder.connections == 1
        first.close()
    sock.unlink()
    lonely, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(lonely.read(), WAIT) == b""  # no gateway: hung up
    writer.close()
    await forwarder.close()
    assert forwarder.connections == 0
