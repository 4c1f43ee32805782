"""The setup-token login flow, run by the core in a real PTY, against an honest stand-in
for ``claude setup-token`` (the real one needs the internet)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from hyperhive.core.gateway.setup_token import LoginError, SetupTokenFlow, SetupTokens
from hyperhive.errors import Busy

FAKE = str(Path(__file__).parent / "support" / "fake-claude-setup-token")
URL = "https://claude.ai/oauth/authorize?code=true&client_id=fake&state=xyz"
TOKEN = "sk-ant-oat01-" + "A" * 40


async def test_the_flow_shows_the_url_takes_the_code_and_gives_the_token() -> None:
    flow = SetupTokenFlow([FAKE], {"PATH": "/usr/bin:/bin"})
    assert await flow.start() == URL
    assert await flow.finish("good-code#state") == TOKEN
    assert not flow.running


async def test_each_agent_gets_its_own_flow_in_a_private_config_dir_removed_after(
    tmp_path: Path,
) -> None:
    scratch = tmp_path / "scratch"
    flows = SetupTokens(
        [FAKE], {"PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": "sk-x"}, scratch=scratch
    )
    assert await flows.start("alice") == URL
    assert await flows.start("bob") == URL
    homes = sorted(scratch.iterdir())
    assert len(homes) == 2
    assert all(stat.S_IMODE(h.stat().st_mode) == 0o700 for h in homes)
    assert await flows.finish("alice", "good-code#state") == TOKEN
    assert len(os.listdir(scratch)) == 1  # alice's is gone; bob's waits for its code
    with pytest.raises(LoginError, match="start it first"):
        await flows.finish("alice", "good-code#state")
    await flows.close()
    assert os.listdir(scratch) == []


async def test_only_a_few_flows_run_at_once(tmp_path: Path) -> None:
    flows = SetupTokens([FAKE], {"PATH": "/usr/bin:/bin"}, scratch=tmp_path, max_flows=1)
    await flows.start("alice")
    with pytest.raises(Busy, match="too many setup-token"):
        await flows.start("bob")
    await flows.start("alice")  # starting again replaces the agent's own flow
    await flows.close()


async def test_a_flow_waiting_too_long_for_its_code_is_ended(tmp_path: Path) -> None:
    flows = SetupTokens([FAKE], {"PATH": "/usr/bin:/bin"}, scratch=tmp_path, code_wait=0.2)
    await flows.start("alice")
    process = flows._flows["alice"].flow._proc
    assert process is not None
    await asyncio.wait_for(process.wait(), 10)  # killed by the expiry
    await asyncio.wait_for(asyncio.gather(*flows._tasks), 10)  # and its dir removed
    with pytest.raises(LoginError, match="start it first"):
        await flows.finish("alice", "good-code#state")
    assert os.listdir(tmp_path) == []


async def test_a_wrong_code_is_a_clear_error_and_the_flow_can_start_again(tmp_path: Path) -> None:
    flows = SetupTokens([FAKE], {"PATH": "/usr/bin:/bin"}, scratch=tmp_path)
    await flows.start("alice")
    with pytest.raises(LoginError, match="ended without finishing"):
        await flows.finish("alice", "bad-code")
    assert (await flows.start("alice")).startswith("https://claude.ai/oauth/authorize")
    await flows.close()


async def test_finishing_without_starting_is_refused() -> None:
    with pytest.raises(LoginError, match="start it first"):
        await SetupTokenFlow([FAKE], {}).finish("code")


async def test_a_missing_cli_is_a_clear_error(tmp_path: Path) -> None:
    flows = SetupTokens(["/nonexistent/claude", "setup-token"], {}, scratch=tmp_path)
    with pytest.raises(LoginError, match="cannot run"):
        await flows.start("alice")
    assert os.listdir(tmp_path) == []
