"""A 529 storm absorbed by the gateway: ten real ``claude -p`` runs, each through its own
agent's api.sock (by the harness's loopback forwarder), while FakeAnthropic answers
every request 529 with ``retry-after``. No more than the cap are ever in flight at the
upstream, and every run ends with the scripted answer once the storm is over."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import claude_agent_sdk
import pytest

from hyperhive.agent.api_forward import ApiForwarder
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from support.fake_anthropic import FakeAnthropic, RecordedRequest, Reply, reply_text
from support.gateway import api_socket

BUNDLED_CLI: Final = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
AGENTS: Final = 10
CAP: Final = 3
STORM: Final = 2 * AGENTS
ANSWER: Final = "the storm is over"
WAIT: Final = 150.0  # ten CLIs starting at once on a loaded 2-core machine


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


async def claude_print(port: int, home: Path) -> dict[str, Any]:
    """One ``claude -p`` run against the gateway at ``port`` (``home`` made already);
    its result line."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANTHROPIC_API_KEY": "hyperhive-gateway",  # a placeholder: the gateway drops it
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",  # the gateway retries; the CLI must not need to
    }
    proc = await asyncio.create_subprocess_exec(
        str(BUNDLED_CLI), "-p", "hello", "--output-format", "stream-json", "--verbose",
        env=env, cwd=home, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), WAIT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    assert lines, stderr.decode(errors="replace")
    result: dict[str, Any] = lines[-1]
    return result


@pytest.mark.timeout(360)
async def test_a_529_storm_is_absorbed_under_the_cap_and_every_run_finishes(
    short_dir: Path, api: FakeAnthropic
) -> None:
    def script(request: RecordedRequest) -> Reply:
        return reply_text(ANSWER)

    api.script = script
    api.latency = 0.05  # answers take a moment, so concurrent requests overlap upstream
    config = Config(
        state_dir=short_dir / "state", run_dir=short_dir / "run", gateway_concurrency=CAP
    )
    hive = Hive(config, env=api.env())
    await hive.start()
    forwarders: list[ApiForwarder] = []
    try:
        names = [f"storm-{i}" for i in range(AGENTS)]
        for name in names:
            await hive.add_agent(name, None)
            forwarders.append(ApiForwarder(api_socket(hive, name)))
        ports = [await f.start() for f in forwarders]
        api.storm(retry_after="1")  # until ended
        homes = [short_dir / f"home-{i}" for i in range(AGENTS)]
        for home in homes:
            home.mkdir()
        runs = [asyncio.create_task(claude_print(p, h)) for p, h in zip(ports, homes, strict=True)]
        # The storm lasts: twice as many 529s as runs, so requests are held off and
        # retried again and again (under retry-after: 1 s, one wave of CAP at a time).
        async with asyncio.timeout(WAIT):
            await api.wait_for_request(lambda _: api.storm_answers >= STORM)
        api.end_storm()
        results = await asyncio.gather(*runs)
    finally:
        for forwarder in forwarders:
            await forwarder.close()
        await hive.shutdown(grace=2.0)

    assert [(r["is_error"], r["result"]) for r in results] == [(False, ANSWER)] * AGENTS
    assert api.max_in_flight <= CAP, api.max_in_flight
    assert api.storm_answers >= STORM
    # Each run's request came through its own agent's socket with the hive's key.
    assert {r.auth.get("x-api-key") for r in api.requests} == {"sk-ant-fake-key"}
