"""The setup-token login flow in a real PTY, against an honest stand-in for
``claude setup-token`` (the real one needs the internet)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hyperhive.agent.login import Credentials, LoginError, SetupTokenFlow

FAKE = str(Path(__file__).parent / "support" / "fake-claude-setup-token")


async def test_the_flow_shows_the_url_takes_the_code_and_stores_the_token(tmp_path: Path) -> None:
    flow = SetupTokenFlow([FAKE], {"PATH": "/usr/bin:/bin"})
    url = await flow.start()
    assert url == "https://claude.ai/oauth/authorize?code=true&client_id=fake&state=xyz"
    token = await flow.finish("good-code#state")
    assert token == "sk-ant-oat01-" + "A" * 40
    credentials = Credentials(tmp_path / "claude", {})
    assert not credentials.available()
    credentials.save_oauth_token(token)
    assert credentials.available()
    assert credentials.engine_env() == {"CLAUDE_CODE_OAUTH_TOKEN": token}
    stored = tmp_path / "claude" / "hyperhive-oauth-token"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert token in credentials.secrets()


async def test_a_wrong_code_is_a_clear_error_and_the_flow_can_start_again() -> None:
    flow = SetupTokenFlow([FAKE], {"PATH": "/usr/bin:/bin"})
    await flow.start()
    with pytest.raises(LoginError, match="ended without finishing"):
        await flow.finish("bad-code")
    assert (await flow.start()).startswith("https://claude.ai/oauth/authorize")
    await flow.abort()


async def test_finishing_without_starting_is_refused() -> None:
    with pytest.raises(LoginError, match="start it first"):
        await SetupTokenFlow([FAKE], {}).finish("code")


async def test_a_missing_cli_is_a_clear_error() -> None:
    with pytest.raises(LoginError, match="cannot run"):
        await SetupTokenFlow(["/nonexistent/claude", "setup-token"], {}).start()
