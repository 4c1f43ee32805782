"""Sockets opened at once (concurrent spawns) are each 0600 and leave the process's umask as
it was: the umask is process-wide, and a socket server must not leak its own into files the
core (or a browser it starts, in tests) creates afterwards."""

from __future__ import annotations

import asyncio
import os
import stat

from hyperhive.config import Config
from hyperhive.core.hive import Hive


async def test_agents_sockets_opened_at_once_are_private_and_leave_the_umask_alone(
    config: Config,
) -> None:
    before = os.umask(0o022)
    try:
        hive = Hive(config)
        await hive.start()
        try:
            records = await asyncio.gather(*(hive.add_agent(f"a{i}", None) for i in range(30)))
            assert os.umask(0o022) == 0o022
            for record in records:
                mode = os.stat(hive.socket_path(record)).st_mode
                assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        finally:
            await hive.shutdown(grace=2)
    finally:
        os.umask(before)
