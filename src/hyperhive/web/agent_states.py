"""What agents wrote in their own ``/state``, read for the dashboard without making it wait.

Each listing reads every agent's saved ``/model`` choice and turn totals in one trip to a
thread. Turn totals are a scan of the agent's history.db, cached until the file changes;
when many change at once (200 agents mid-turn) a listing would wait for 200 scans. So a
listing rescans at most :data:`SCANS_PER_LISTING` changed histories and shows the others as
last read, while one background read brings those up to date for the next listing. A quiet
hive (a few changes between listings) always gets fresh totals.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from hyperhive.agent.history_stats import Stats, StatsReader
from hyperhive.agent.layout import model_file, saved_model

SCANS_PER_LISTING: Final = 16
State = tuple[str | None, Stats | None]  # (saved model, turn totals)
log = logging.getLogger(__name__)


class AgentStates:
    def __init__(self, reader: StatsReader | None = None) -> None:
        self._reader = reader or StatsReader()
        self._catching_up: asyncio.Task[None] | None = None
        self._models = SavedModels()

    async def of(self, names: list[str], state_dir_of: Callable[[str], Path]) -> list[State]:
        """Each agent's state, in ``names``' order."""
        dirs = [state_dir_of(name) for name in names]
        found, behind = await asyncio.to_thread(self._read, dirs, SCANS_PER_LISTING)
        if behind and (self._catching_up is None or self._catching_up.done()):
            self._catching_up = asyncio.create_task(self._catch_up(behind))
        return found

    async def caught_up(self) -> None:
        """Wait for the background read, if one runs (for tests and shutdown)."""
        if self._catching_up is not None:
            await self._catching_up

    def _read(self, dirs: list[Path], scans: int | None) -> tuple[list[State], list[Path]]:
        found: list[State] = []
        behind: list[Path] = []
        for state_dir in dirs:
            stats, freshness = self._reader.read_within(state_dir, scan=scans != 0)
            if freshness == "stale":
                behind.append(state_dir)
            elif freshness == "scanned" and scans is not None:
                scans -= 1
            found.append((self._models.read(state_dir), stats))
        return found, behind

    async def _catch_up(self, dirs: list[Path]) -> None:
        try:
            await asyncio.to_thread(self._read, dirs, None)
        except OSError as exc:  # a vanished dir: the next listing sees what is there
            log.debug("catching up on agents' histories: %s", exc)


class SavedModels:
    """Each agent's ``/model`` file, read again only when one lstat says it changed."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[str, tuple[int, int, int] | None, str | None]] = {}

    def read(self, state_dir: Path) -> str | None:
        seen = self._seen.get(state_dir)
        path = seen[0] if seen is not None else str(model_file(state_dir))
        try:
            info = os.lstat(path)
            signature: tuple[int, int, int] | None = (info.st_ino, info.st_mtime_ns, info.st_size)
        except OSError:
            signature = None
        if seen is not None and seen[1] == signature:
            return seen[2]
        model = saved_model(state_dir) if signature is not None else None
        self._seen[state_dir] = (path, signature, model)
        return model
