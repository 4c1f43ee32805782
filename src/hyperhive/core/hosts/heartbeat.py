"""This core's beat: announce the host once, then every interval say it is alive and how
loaded it is, so other cores see it up and can weigh it as a place for new agents."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hyperhive.core.hosts.table import HostTable
from hyperhive.errors import DatabaseError

log = logging.getLogger(__name__)

MEMINFO: Final = Path("/proc/meminfo")
# A beat is one short statement; a close that waits longer than this is stuck in the
# driver, and shutdown must not be.
CLOSE_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class Sample:
    cpus: int
    load: float
    mem_available: int  # bytes


Probe = Callable[[], Sample]


def mem_available(meminfo: Path = MEMINFO) -> int:
    """MemAvailable in bytes; 0 where the kernel does not say (then the host looks full,
    which sends new agents elsewhere rather than onto a machine we cannot measure)."""
    try:
        text = meminfo.read_text(encoding="ascii")
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            number, _, unit = value.strip().partition(" ")
            if number.isdigit():
                return int(number) * (1024 if unit == "kB" else 1)
    return 0


def probe_machine() -> Sample:
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        load = 0.0
    return Sample(os.cpu_count() or 1, load, mem_available())


class Heartbeat:
    def __init__(
        self,
        table: HostTable,
        name: str,
        url: str | None,
        agents: Callable[[], int],
        *,
        interval: float | None = None,
        probe: Probe = probe_machine,
        runs_agents: bool = True,
    ) -> None:
        """``agents``: how many agents this host runs now. ``interval``: None is the
        table's, the one other cores judge this host's beats by. ``runs_agents``: False
        for a core without a container backend (no spawn is placed on it)."""
        self._table = table
        self._name = name
        self._url = url
        self._agents = agents
        self._interval = table.interval if interval is None else interval
        self._probe = probe
        self._runs_agents = runs_agents
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        """Announce (a store that refuses it fails the start), then beat in the background."""
        self._table.announce(self._name, self._url, self._probe().cpus, self._runs_agents)
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self._name}")

    def beat(self) -> bool:
        """One beat now; False when the store refused it (logged once per outage)."""
        sample = self._probe()
        try:
            self._table.beat(self._name, self._agents(), sample.load, sample.mem_available)
        except DatabaseError as exc:
            if not self._failing:
                log.warning(
                    "host %s: heartbeat not recorded, retrying each beat: %s", self._name, exc
                )
            self._failing = True
            return False
        if self._failing:
            log.warning("host %s: heartbeat recorded again", self._name)
            self._failing = False
        return True

    async def _run(self) -> None:
        while True:
            self.beat()
            await asyncio.sleep(self._interval)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        task = self._task
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task}, timeout=CLOSE_SECONDS)
