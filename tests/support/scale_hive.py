"""A big hive behind a real dashboard, for the dashboard's scale tests.

The core is in-process with the :class:`FakeBackend`, so hundreds of "containers" cost
nothing but their config repos and sockets; the dashboard is the real app under the real
:class:`~hyperhive.web.server.WebServer`. ``hm1nd`` is an external participant, as in
:mod:`support.dashboard`, so the core's notes to the manager land in an inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from hyperhive.backends.fake import FakeBackend
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.core.supervision import Policy
from hyperhive.web.dashboard_app import create_dashboard_app
from support.dashboard import ENV, TOKEN
from support.stub_control import serving

# Enough for a flood from the test: the default rates are an agent's, not a load test's.
FLOOD_RATE = 1_000_000
# One crash and the container is left failed: its state then holds still to be looked at.
CRASH_ONCE = Policy(max_crashes=1)


@dataclass
class BigHive:
    hive: Hive
    backend: FakeBackend
    base: str  # the dashboard's URL, ending in "/"
    names: list[str]
    setup_seconds: float  # spawning every agent, start to end

    @property
    def login_url(self) -> str:
        return f"{self.base}?{urlencode({'token': TOKEN})}"

    async def host(self, op: str, **args: Any) -> Any:
        async with await Client.connect(self.hive.config.host_socket) as client:
            return await client.call(op, **args)


def agent_names(count: int) -> list[str]:
    return [f"ag{i:03d}" for i in range(count)]


async def spawn_all(hive: Hive, names: list[str], parallel: int) -> None:
    """Spawn every agent, ``parallel`` at a time (each runs git for its config repos)."""
    gate = asyncio.Semaphore(parallel)

    async def one(name: str) -> None:
        async with gate:
            await hive.lifecycle.spawn(name, None)

    async with asyncio.TaskGroup() as group:
        for name in names:
            group.create_task(one(name))


@contextlib.asynccontextmanager
async def big_hive(config: Config, count: int, *, parallel: int = 8) -> AsyncIterator[BigHive]:
    """A started hive of ``count`` spawned agents (and an external hm1nd), its dashboard on
    an ephemeral port."""
    config = dataclasses.replace(config, send_rate=FLOOD_RATE, send_burst=FLOOD_RATE)
    backend = FakeBackend()
    hive = Hive(config, backend, env=ENV, policy=CRASH_ONCE, operator_token=TOKEN)
    await hive.start(manager=False)
    try:
        await hive.add_agent("hm1nd", None)
        names = agent_names(count)
        began = time.monotonic()
        await spawn_all(hive, names, parallel)
        took = time.monotonic() - began
        app = create_dashboard_app(hive.operator_desk(), token=TOKEN)
        async with serving(app) as server:
            yield BigHive(hive, backend, f"http://127.0.0.1:{server.port}/", names, took)
    finally:
        await hive.shutdown(grace=2)
