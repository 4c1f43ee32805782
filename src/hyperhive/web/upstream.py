"""One HTTP/1.1 exchange with an agent's harness over its ``web.sock``, trusting nothing of it.

The agent owns its socket directory and may put anything at ``web.sock``: a symlink to
another agent's socket or to ``host.sock``, a FIFO, a file. :func:`connect_socket` opens the
final component with ``O_PATH | O_NOFOLLOW`` below a directory opened the same way, checks
with ``fstat`` that it is a socket, and connects through ``/proc/self/fd/<fd>``: the kernel
connects to exactly the inode that was checked (a symlink's ``O_PATH`` fd refuses the
connect), with no window for a swap. What comes back is parsed by h11 with a bound on the
header block; the caller bounds the body and the time.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import h11

from hyperhive.errors import HiveError

CONNECT_S: Final = 5.0
FIRST_BYTE_S: Final = 30.0
MAX_HEADER_BYTES: Final = 16 * 1024
READ_CHUNK: Final = 64 * 1024
_DIR_FLAGS: Final = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SOCK_FLAGS: Final = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class UpstreamError(HiveError):
    """The harness cannot be reached or answered something it must not; the message is
    the why, shown to the operator."""

    code = "upstream"


def connect_socket(directory: Path, name: str) -> socket.socket:
    """A blocking-free unix socket connected to ``directory/name``, which must be a socket
    itself (never through a symlink). ``directory`` is trusted; ``name`` in it is not."""
    try:
        dir_fd = os.open(directory, _DIR_FLAGS)
    except OSError as exc:
        raise UpstreamError(f"no socket directory ({_why(exc)})") from None
    try:
        fd = os.open(name, _SOCK_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise UpstreamError(f"no {name} ({_why(exc)})") from None
    finally:
        os.close(dir_fd)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise UpstreamError(f"{name} is not a socket")
        # A blocking connect to a unix socket never waits on the peer's accept: it either
        # queues at once or fails (ECONNREFUSED, EAGAIN on a full backlog).
        sock.setblocking(False)
        sock.connect(f"/proc/self/fd/{fd}")
    except OSError as exc:
        sock.close()
        raise UpstreamError(f"{name} refused the connection ({_why(exc)})") from None
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(fd)
    return sock


def _why(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "error")


@dataclass(eq=False)
class Answer:
    """The head of an upstream answer; :meth:`chunks` reads the body as it comes."""

    status: int
    content_type: str
    _conn: h11.Connection = field(repr=False)
    _reader: asyncio.StreamReader = field(repr=False)
    _writer: asyncio.StreamWriter = field(repr=False)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks, each as soon as it arrives; ends at the body's end."""
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return

    async def read_all(self, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes (the caller bounds the time)."""
        got = bytearray()
        async for chunk in self.chunks():
            got += chunk
            if len(got) > limit:
                raise UpstreamError(f"the answer is over {limit // (1024 * 1024)} MiB")
        return bytes(got)

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        return await _next_event(self._conn, self._reader)

    def close(self) -> None:
        """Hang up at once (the harness sees its client go away)."""
        self._writer.close()


async def _next_event(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise UpstreamError(f"a broken answer ({exc})") from None
        if event is not h11.NEED_DATA:
            if isinstance(event, h11.ConnectionClosed):
                raise UpstreamError("the connection closed mid-answer")
            return event
        try:
            data = await reader.read(READ_CHUNK)
        except OSError as exc:
            raise UpstreamError(f"the connection failed ({_why(exc)})") from None
        conn.receive_data(data)


async def exchange(
    directory: Path,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    name: str = "web.sock",
    first_byte: float | None = FIRST_BYTE_S,
) -> Answer:
    """Send one request to ``directory/name`` and read the answer's head (status and
    content type); ``first_byte``: how long the head may take, None for no bound."""
    sock = connect_socket(directory, name)
    try:
        async with asyncio.timeout(CONNECT_S):
            reader, writer = await asyncio.open_unix_connection(sock=sock)
    except (OSError, TimeoutError) as exc:
        sock.close()
        raise UpstreamError(f"cannot open the connection ({type(exc).__name__})") from None
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
    try:
        sent = [("host", "harness"), *headers, ("connection", "close")]
        if body or method == "POST":
            sent.append(("content-length", str(len(body))))
        writer.write(conn.send(h11.Request(method=method, target=target, headers=sent)))
        if body:
            writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        async with asyncio.timeout(first_byte):
            await writer.drain()
            head = await _next_event(conn, reader)
    except TimeoutError:
        writer.close()
        raise UpstreamError(f"no answer within {first_byte:g}s") from None
    except OSError as exc:
        writer.close()
        raise UpstreamError(f"the connection failed ({_why(exc)})") from None
    except BaseException:
        writer.close()
        raise
    if not isinstance(head, h11.Response):
        writer.close()
        raise UpstreamError("not an HTTP answer")
    kind = dict(head.headers).get(b"content-type", b"").decode("latin-1")
    return Answer(head.status_code, kind, conn, reader, writer)
