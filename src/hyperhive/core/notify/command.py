"""The command sink: run the operator's argv with the notification as JSON on stdin.

It runs in its own session, so a timeout kills everything it started; it gets a
minimal environment (never the core's credentials); exit 0 is delivered. Its output is
drained but only the first :data:`OUTPUT_MAX` bytes of stderr are kept, for the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Final

from hyperhive.errors import HiveError

OUTPUT_MAX: Final = 2000
KEPT_ENV: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


class CommandFailed(HiveError):
    code = "delivery_failed"


async def run_command(argv: tuple[str, ...], stdin: bytes, seconds: float) -> None:
    """Raise :class:`CommandFailed` unless ``argv`` exits 0 within ``seconds``."""
    env = {k: v for k in KEPT_ENV if (v := os.environ.get(k)) is not None}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd="/",
            start_new_session=True,
        )
    except OSError as exc:
        raise CommandFailed(f"cannot run {argv[0]}: {exc.strerror}") from None
    try:
        async with asyncio.timeout(seconds):
            err = await _talk(proc, stdin)
            code = await proc.wait()
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise CommandFailed(f"{argv[0]} did not finish within {seconds:g}s; killed") from None
    except asyncio.CancelledError:
        _kill_group(proc.pid)  # a cancelled send (a shutdown) leaves nothing running
        raise
    if code != 0:
        detail = err.decode(errors="replace").strip()
        raise CommandFailed(f"{argv[0]} exited {code}" + (f": {detail}" if detail else ""))


async def _talk(proc: asyncio.subprocess.Process, stdin: bytes) -> bytes:
    assert proc.stdin is not None and proc.stderr is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(stdin)
        await proc.stdin.drain()
    proc.stdin.close()
    kept = b""
    while chunk := await proc.stderr.read(65536):
        kept = (kept + chunk)[:OUTPUT_MAX]
    return kept


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
