"""Agents never hold the operator token: each page opens with its own page key, derived from
the token, and the agent's environment holds only the digest of that key."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from hyperhive.agent.page_access import PAGE_KEY_FILE, page_access
from hyperhive.config import Config
from hyperhive.core.agent_config import AgentConfig
from hyperhive.core.containers import build_spec, forwarded_env
from hyperhive.errors import ConfigError
from hyperhive.tokens import KeyCheck, key_digest, page_key
from hyperhive.web import create_agent_app
from support.stub_control import StubControl, serving

TOKEN = "operator-token-0123456789abcdef"


def test_a_page_key_opens_one_page_and_says_nothing_about_the_token() -> None:
    alice, bob = page_key(TOKEN, "alice"), page_key(TOKEN, "bob")
    assert alice != bob and TOKEN not in alice
    assert alice == page_key(TOKEN, "alice")  # the dashboard and the core agree
    check = KeyCheck.of(alice)
    assert check.matches(alice)
    assert not check.matches(bob) and not check.matches(TOKEN) and not check.matches("")
    assert not check.matches(check.digest)  # the digest is no key
    assert page_key(TOKEN + "x", "alice") != alice


@pytest.mark.parametrize("digest", ["", "abc", "g" * 64, "a" * 63, "a" * 65])
def test_a_malformed_digest_is_refused(digest: str) -> None:
    with pytest.raises(ConfigError, match="64 hex digits"):
        KeyCheck.from_digest(digest)


def test_containers_get_the_digest_of_their_page_key_never_the_token(config: Config) -> None:
    env = forwarded_env(
        {
            "HYPERHIVE_OPERATOR_TOKEN": TOKEN,
            "HYPERHIVE_PAGE_KEY_DIGEST": "0" * 64,  # the core's own, if any, is not passed on
            "HYPERHIVE_LOG_LEVEL": "INFO",
        }
    )
    assert env == {"HYPERHIVE_LOG_LEVEL": "INFO"}
    spec = build_spec(config, "alice", AgentConfig(), config.state_dir, "sha", env, TOKEN)
    values = "".join(spec.env.values())
    assert TOKEN not in values and page_key(TOKEN, "alice") not in values
    digest = spec.env["HYPERHIVE_PAGE_KEY_DIGEST"]
    assert digest == key_digest(page_key(TOKEN, "alice"))
    assert KeyCheck.from_digest(digest).matches(page_key(TOKEN, "alice"))


async def test_an_agent_page_opens_with_its_own_key_and_nothing_else() -> None:
    digest = key_digest(page_key(TOKEN, "alice"))
    app = create_agent_app(StubControl("alice"), check=KeyCheck.from_digest(digest))
    async with serving(app) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/api/status")).status_code == 401
            for wrong in (TOKEN, page_key(TOKEN, "bob"), digest):
                bearer = {"Authorization": f"Bearer {wrong}"}
                assert (await client.get("/api/status", headers=bearer)).status_code == 401
                assert (await client.get("/", params={"token": wrong})).status_code == 401
            login = await client.get("/", params={"token": page_key(TOKEN, "alice")})
            assert login.status_code == 303
            assert (await client.get("/api/status")).status_code == 200


def test_a_harness_from_the_core_checks_the_digest_it_was_given(tmp_path: Path) -> None:
    digest = key_digest(page_key(TOKEN, "alice"))
    access = page_access("alice", tmp_path, {"HYPERHIVE_PAGE_KEY_DIGEST": digest})
    assert access.check.matches(page_key(TOKEN, "alice")) and access.key is None
    assert not (tmp_path / PAGE_KEY_FILE).exists()
    with pytest.raises(ConfigError, match="HYPERHIVE_PAGE_KEY_DIGEST"):
        page_access("alice", tmp_path, {"HYPERHIVE_PAGE_KEY_DIGEST": "nope"})


def test_a_harness_run_by_hand_with_the_token_opens_with_the_dashboards_link(
    tmp_path: Path,
) -> None:
    access = page_access("alice", tmp_path, {"HYPERHIVE_OPERATOR_TOKEN": TOKEN})
    assert access.check.matches(page_key(TOKEN, "alice"))
    assert not access.check.matches(TOKEN) and access.key is None
    with pytest.raises(ConfigError, match="too short"):
        page_access("alice", tmp_path, {"HYPERHIVE_OPERATOR_TOKEN": "short"})


def test_a_harness_run_by_hand_without_either_keeps_a_key_of_its_own(tmp_path: Path) -> None:
    first = page_access("alice", tmp_path / "state", {})
    path = tmp_path / "state" / PAGE_KEY_FILE
    assert first.key_file == path and first.key is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first.key and first.check.matches(first.key)
    again = page_access("alice", tmp_path / "state", {})
    assert again.key == first.key  # a restart keeps the bookmark working
