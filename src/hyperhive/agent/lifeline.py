"""The harness ends with the core that started it.

The core passes each sandbox the read end of a pipe whose write end only the
core holds (``HYPERHIVE_LIFELINE_FD``). When the core dies, however it dies,
the kernel closes the write end and the read end reports end-of-file: the
harness then stops, and its sandbox with it. A restarted core starts every
agent again, so an agent outliving its core would only run twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import Final

log = logging.getLogger(__name__)
ENV: Final = "HYPERHIVE_LIFELINE_FD"


def watch(env: Mapping[str, str], on_end: Callable[[], None]) -> None:
    """Call ``on_end`` once the core holding the other end is gone; no-op without one."""
    raw = env.get(ENV)
    if not raw:
        return
    try:
        fd = int(raw)
        os.set_blocking(fd, False)
    except (ValueError, OSError) as exc:
        log.warning("%s=%r is not a usable descriptor (%s); not watching the core", ENV, raw, exc)
        return
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            return  # nobody writes on it; stray bytes mean nothing
        loop.remove_reader(fd)
        os.close(fd)
        log.warning("the core that started this agent is gone; stopping")
        on_end()

    loop.add_reader(fd, readable)
