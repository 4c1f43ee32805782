"""The harness's session weighs no more than its niceness.

With autogroup scheduling a niceness counts only among the processes of one
session: a sandbox's new session is weighted like a nice-0 process against the
core, whatever niceness the core started it at. Where the core could not put
the agent in a cgroup below it (:mod:`hyperhive.backends.cpu_groups`), the
harness gives its session's autogroup its own niceness at start. Advisory: an
agent can start a new session of its own, which the kernel weighs at 0 again;
only the cgroup holds against that.

The kernel lets an unprivileged process change an autogroup at most once per
100 ms across the whole host (EAGAIN otherwise), so many agents starting at
once take turns: each retries for a bounded time, then goes on unweighted.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

AUTOGROUP: Final = Path("/proc/self/autogroup")
RETRY_EVERY: Final = 0.11  # just over the kernel's 100 ms
RETRY_FOR: Final = 30.0


def autogroup_nice(text: str) -> int | None:
    """The niceness in /proc/<pid>/autogroup's ``/autogroup-42 nice 10``."""
    parts = text.split()
    if len(parts) == 3 and parts[1] == "nice":
        try:
            return int(parts[2])
        except ValueError:
            return None
    return None


def give(path: Path, nice: int) -> bool | None:
    """One try: True once the autogroup is at ``nice`` or below, False if it cannot be,
    None if the kernel said to try again later."""
    try:
        current = autogroup_nice(path.read_text())
        if current is None or current >= nice:
            return current is not None
        path.write_text(f"{nice}\n")
        return True
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            return None
        log.info("session left at its weight: %s: %s", path, exc.strerror or exc)
        return False


async def settle(path: Path = AUTOGROUP, retry_for: float = RETRY_FOR) -> bool:
    """Give this session's autogroup this process's niceness; True once it has it."""
    nice = os.nice(0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for
    while (done := give(path, nice)) is None:
        if loop.time() >= deadline:
            log.info("session left at its weight: %s kept refusing", path)
            return False
        await asyncio.sleep(RETRY_EVERY)
    return done
