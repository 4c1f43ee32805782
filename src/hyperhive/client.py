"""An asyncio client of the JSON-lines socket protocol (CLI, harness, tests, bench).

:func:`call_retrying` is for ops that are safe to repeat, such as a send with a key:
when no answer came (the core was restarting, the connection was reset) it tries
again on a new connection, a bounded number of times with a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Final

from hyperhive.errors import HiveError, ProtocolError

READ_LIMIT: Final = 64 * 1024 * 1024
# Pauses before each retry of call_retrying: about six seconds in all, longer than the
# core takes to come back up, short enough for a model waiting on its tool call.
RETRY_PAUSES: Final = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


class RemoteError(HiveError):
    """An error answer from the core; ``code`` is the core's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ConnectionLost(ProtocolError):
    """No answer came: the core could not be reached, or the connection ended first.

    Whether the request took effect is unknown; only a request that is safe to repeat
    (a keyed send) may be sent again.
    """

    code = "unreachable"


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path: str | Path) -> Client:
        try:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=READ_LIMIT)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ConnectionLost(f"cannot reach hive-c0re at {path}: {exc.strerror}") from None
        return cls(reader, writer)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            await self._writer.wait_closed()

    async def call(self, op: str, **args: Any) -> Any:
        """Send one request and return its result, or raise :class:`RemoteError`."""
        async with self._lock:
            rid = next(self._ids)
            try:
                await self._write({"id": rid, "op": op, "args": args})
                answer = await self._read()
            except OSError as exc:  # reset, broken pipe: the core went away mid-request
                raise ConnectionLost(f"lost the connection to hive-c0re: {exc}") from None
        return _result(answer, rid)

    async def stream(self, op: str, **args: Any) -> AsyncIterator[Any]:
        """Events of a streaming op until the core ends the stream."""
        async with self._lock:
            rid = next(self._ids)
            await self._write({"id": rid, "op": op, "args": args})
            while True:
                try:
                    answer = await self._read()
                except ProtocolError:
                    return
                if not answer.get("ok"):
                    _result(answer, rid)
                yield answer.get("event")

    async def _write(self, request: dict[str, Any]) -> None:
        self._writer.write(json.dumps(request).encode() + b"\n")
        await self._writer.drain()

    async def _read(self) -> dict[str, Any]:
        line = await self._reader.readline()
        if not line:
            raise ConnectionLost("hive-c0re closed the connection")
        try:
            answer = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"unreadable answer from hive-c0re: {exc}") from None
        if not isinstance(answer, dict):
            raise ProtocolError("unreadable answer from hive-c0re: not an object")
        return answer


async def call_retrying(
    path: str | Path, op: str, *, pauses: Sequence[float] = RETRY_PAUSES, **args: Any
) -> Any:
    """``op`` on a new connection, tried again after each pause while no answer comes.

    Only for ops that are safe to repeat. ``shutting_down`` counts as no answer: the
    core did nothing and is on its way back. Every other answer, error or not, is final.
    """
    for pause in pauses:
        try:
            return await _call_once(path, op, args)
        except ConnectionLost:
            pass
        except RemoteError as exc:
            if exc.code != "shutting_down":
                raise
        await asyncio.sleep(pause)
    return await _call_once(path, op, args)


async def _call_once(path: str | Path, op: str, args: dict[str, Any]) -> Any:
    async with await Client.connect(path) as client:
        return await client.call(op, **args)


def _result(answer: dict[str, Any], rid: int) -> Any:
    if answer.get("ok"):
        if answer.get("id") != rid:
            raise ProtocolError(f"answer for request {answer.get('id')!r}, expected {rid}")
        return answer.get("result")
    err = answer.get("error") or {}
    raise RemoteError(str(err.get("code", "error")), str(err.get("message", "unknown error")))
