"""File descriptors at the daemon's start and when they run out.

At start the soft RLIMIT_NOFILE is raised to the hard limit: the connection
budget (core/connections.py) is derived from it. Should descriptors still run
out, asyncio retries ``accept()`` every second and reports each failure to
the loop's exception handler with a traceback; the handler here logs the
first failure of a burst plainly and then at most one line with a count per
window, so a starved daemon does not also fill its disk with logs.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

log = logging.getLogger(__name__)

RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
WINDOW_SECONDS: Final = 60.0


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # an infinite hard limit, say
            log.warning("cannot raise the file descriptor limit from %d: %s", soft, exc)
    log.info("file descriptor limit: %s", "unlimited" if soft < 0 else soft)
    return soft


@dataclass
class BurstLog:
    """Which of a run of like failures deserve a log line. Plain code; the clock is passed in.

    The first failure after a quiet window is told in full; while they go on,
    one summary per window says how many more there were.
    """

    window: float = WINDOW_SECONDS
    _last: float | None = field(default=None, init=False)  # the last failure seen
    _told: float = field(default=0.0, init=False)  # when a line was last written
    _untold: int = field(default=0, init=False)

    def note(self, now: float) -> tuple[str, int] | None:
        """``("first", 0)``, ``("more", count)`` to log now, or None to stay quiet."""
        quiet = self._last is None or now - self._last >= self.window
        self._last = now
        if quiet:
            self._told, self._untold = now, 0
            return ("first", 0)
        self._untold += 1
        if now - self._told < self.window:
            return None
        count, self._told, self._untold = self._untold, now, 0
        return ("more", count)


def is_accept_starvation(context: dict[str, Any]) -> bool:
    exc = context.get("exception")
    message = str(context.get("message", ""))
    return (
        isinstance(exc, OSError)
        and exc.errno in RESOURCE_ERRNOS
        and message.startswith("socket.accept()")
    )


def install(
    loop: asyncio.AbstractEventLoop, clock: Callable[[], float] = time.monotonic
) -> BurstLog:
    """Route the loop's accept-starvation reports through a :class:`BurstLog`."""
    burst = BurstLog()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not is_accept_starvation(context):
            loop.default_exception_handler(context)
            return
        told = burst.note(clock())
        if told is None:
            return
        kind, count = told
        if kind == "first":
            log.error(
                "out of file descriptors: %s; new connections wait until some close",
                context["exception"],
            )
        else:
            log.error(
                "out of file descriptors: %d more failed accepts in the last %g s",
                count,
                burst.window,
            )

    loop.set_exception_handler(handler)
    return burst
