"""An in-process core on the fake backend, and the ways tests talk to it and
pull its levers (tests/test_lifecycle*.py)."""

from __future__ import annotations

import signal
from typing import Any

from hyperhive.backends.base import Backend
from hyperhive.backends.fake import FakeBackend
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.core.supervision import Policy
from support.bus import BusWatcher

ENV = {"HYPERHIVE_ENGINE": "fake", "HYPERHIVE_LOG_LEVEL": "WARNING"}


def make_hive(config: Config, policy: Policy | None = None, backend: Backend | None = None) -> Hive:
    return Hive(config, backend or FakeBackend(), env=ENV, policy=policy)


def fake(hive: Hive) -> FakeBackend:
    backend = hive.lifecycle.backend
    assert isinstance(backend, FakeBackend)
    return backend


async def host(hive: Hive, op: str, **args: Any) -> Any:
    async with await Client.connect(hive.config.host_socket) as client:
        return await client.call(op, **args)


async def manager(hive: Hive, op: str, **args: Any) -> Any:
    async with await Client.connect(hive.config.run_dir / "manager" / "mcp.sock") as client:
        return await client.call(op, **args)


def kill_container(hive: Hive, name: str) -> None:
    fake(hive).crash(name, code=-signal.SIGKILL)  # as if it died on its own


async def told_manager(watcher: BusWatcher, body: str) -> dict[str, Any]:
    """The next core event stored for hm1nd: what is stored, not what is left to
    receive, for on a real backend hm1nd's own harness consumes its inbox."""
    event = await watcher.next(
        lambda e: (
            e.get("type") == "message"
            and e["message"]["to"] == "hm1nd"
            and e["message"]["kind"] == "event"
            and e["message"]["body"] == body
        )
    )
    return dict(event["message"])
