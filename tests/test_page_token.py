"""Agents never hold the operator token: their pages check a per-agent digest
of it, which is worthless against the dashboard or another agent's page."""

from __future__ import annotations

import httpx

from hyperhive.config import Config
from hyperhive.core.agent_config import AgentConfig
from hyperhive.core.containers import build_spec, forwarded_env
from hyperhive.web import create_agent_app
from hyperhive.web.security import TokenCheck, page_salt
from support.stub_control import StubControl, serving

TOKEN = "operator-token-0123456789abcdef"


def test_a_digest_recognises_only_the_token_and_only_for_its_salt() -> None:
    check = TokenCheck.of(TOKEN, page_salt("alice"))
    assert check.matches(TOKEN)
    assert not check.matches(TOKEN + "x") and not check.matches("")
    assert TOKEN not in check.digest
    assert check.digest != TokenCheck.of(TOKEN, page_salt("bob")).digest
    assert not TokenCheck(check.digest, page_salt("alice")).matches(check.digest)


def test_containers_get_a_digest_of_the_token_never_the_token(config: Config) -> None:
    env = forwarded_env({"HYPERHIVE_OPERATOR_TOKEN": TOKEN, "ANTHROPIC_API_KEY": "sk-x"})
    assert env == {"ANTHROPIC_API_KEY": "sk-x"}
    spec = build_spec(config, "alice", AgentConfig(), config.state_dir, "sha", env, TOKEN)
    assert TOKEN not in "".join(spec.env.values())
    digest = spec.env["HYPERHIVE_PAGE_TOKEN_DIGEST"]
    assert TokenCheck(digest, page_salt("alice")).matches(TOKEN)
    untokened = build_spec(config, "bob", AgentConfig(), config.state_dir, "sha", env, None)
    assert "HYPERHIVE_PAGE_TOKEN_DIGEST" not in untokened.env


async def test_an_agent_page_with_a_digest_lets_in_the_operator_and_nobody_else() -> None:
    check = TokenCheck.of(TOKEN, page_salt("alice"))
    async with serving(create_agent_app(StubControl("alice"), check=check)) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/api/status")).status_code == 401
            as_digest = {"Authorization": f"Bearer {check.digest}"}
            assert (await client.get("/api/status", headers=as_digest)).status_code == 401
            login = await client.get(f"/?token={TOKEN}")
            assert login.status_code == 303
            assert (await client.get("/api/status")).status_code == 200
