"""A small live swarm behind a real dashboard, for the dashboard's API and browser tests.

The core is in-process with the real bubblewrap backend; agents' harnesses run the fake
engine. ``hm1nd`` is registered as an external participant (no container), so the test
itself speaks as the manager on its socket and is the only reader of its inbox: a running
manager harness would otherwise race the test for every ``operator_answered`` event.

The dashboard is behind an operator token, as it always is: :meth:`Swarm.login_url` is what
a browser opens, :func:`operator_client` an HTTP client logged in the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette

from hyperhive.backends.registry import choose
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.web.dashboard_app import create_dashboard_app
from support.stub_control import serving

ENV = {"HYPERHIVE_ENGINE": "fake", "HYPERHIVE_LOG_LEVEL": "WARNING"}
WAIT = 30.0
TOKEN = "swarm-operator-token-0123456789"


def make_hive(config: Config, token: str = TOKEN, env: Mapping[str, str] | None = None) -> Hive:
    """``env``: the core's, in place of :data:`ENV`."""
    backend = choose(
        "bwrap", work_dir=config.state_dir / "backend", hide=(config.state_dir, config.run_dir)
    )
    return Hive(config, backend, env=ENV if env is None else env, operator_token=token)


@dataclass
class Swarm:
    hive: Hive
    base: str  # the dashboard's URL, ending in "/"
    csrf: str
    token: str
    app: Starlette | None = None  # the dashboard app, for its settings (front door bounds)

    @property
    def login_url(self) -> str:
        return f"{self.base}?{urlencode({'token': self.token})}"

    async def host(self, op: str, **args: Any) -> Any:
        async with await Client.connect(self.hive.config.host_socket) as client:
            return await client.call(op, **args)

    async def manager(self, op: str, **args: Any) -> Any:
        path = self.hive.config.agent_socket("hm1nd", manager=True)
        async with await Client.connect(path) as client:
            return await client.call(op, **args)

    async def manager_event(self) -> dict[str, Any]:
        """The next message in hm1nd's inbox, which must be a core event."""
        got = await self.manager("recv", wait=WAIT)
        assert got is not None, "nothing reached the manager's inbox"
        message: dict[str, Any] = got["message"]
        assert message["kind"] == "event", message
        return message

    async def propose(self, name: str, toml: str, note: str) -> str:
        """Commit ``toml`` as ``name``'s proposed agent.toml, as the manager would; the sha."""
        repo = self.hive.config.state_dir / "proposed" / name / "config"
        (repo / "agent.toml").write_text(toml)
        # The repo belongs to the manager's uid; the test writes it as root.
        git = ("git", "-c", "safe.directory=*")
        await run(*git, "commit", "-qam", note, cwd=str(repo))
        return await run(*git, "rev-parse", "HEAD", cwd=str(repo))

    async def cli(self, *args: str) -> str:
        """The operator's real ``hive`` CLI against this core."""
        run_dir = str(self.hive.config.run_dir)
        return await run(sys.executable, "-m", "hyperhive.cli.main", *args, "--run-dir", run_dir)


async def run(*argv: str, cwd: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0, f"{argv}: {err.decode()}"
    return out.decode().strip()


@contextlib.asynccontextmanager
async def live_swarm(
    config: Config, *, token: str = TOKEN, env: Mapping[str, str] | None = None
) -> AsyncIterator[Swarm]:
    """A started hive with an external hm1nd, and its dashboard on an ephemeral port."""
    hive = make_hive(config, token, env)
    await hive.start(manager=False)
    try:
        await hive.add_agent("hm1nd", None)
        app = create_dashboard_app(hive.operator_desk(), token=token)
        async with serving(app) as server:
            yield Swarm(hive, f"http://127.0.0.1:{server.port}/", app.state.csrf, token, app)
    finally:
        await hive.shutdown(grace=2)


@contextlib.asynccontextmanager
async def operator_client(swarm: Swarm) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client logged in as a browser is: ``?token=`` once, a session cookie after."""
    async with httpx.AsyncClient(base_url=swarm.base, timeout=WAIT) as client:
        login = await client.get(swarm.login_url)
        assert login.status_code == 303, login.text
        yield client
