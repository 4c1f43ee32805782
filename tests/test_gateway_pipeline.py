"""The gateway's pipeline with metering and credentials of the test's own, on a real
api.sock and FakeAnthropic: refusals, missing credentials, tokens, and what is metered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hyperhive.config import Config
from hyperhive.core.gateway.seams import OAUTH_BETA, Credential, Usage
from hyperhive.core.gateway.service import Gateway
from support.fake_anthropic import FakeAnthropic, Turns, reply_error, reply_text
from support.gateway import client, error_of, message

CACHED = {
    "input_tokens": 120,
    "output_tokens": 42,
    "cache_creation_input_tokens": 300,
    "cache_read_input_tokens": 4000,
}


@dataclass
class Ledger:
    """A Metering that refuses whom it is told to and keeps what it is given."""

    refuse: dict[str, str] = field(default_factory=dict)
    records: list[tuple[str, str | None, Usage]] = field(default_factory=list)

    def refusal(self, agent: str) -> str | None:
        return self.refuse.get(agent)

    def record(self, agent: str, model: str | None, usage: Usage) -> None:
        self.records.append((agent, model, usage))


@dataclass
class Keys:
    by_agent: dict[str, Credential] = field(default_factory=dict)

    def for_agent(self, agent: str) -> Credential | None:
        return self.by_agent.get(agent)


@dataclass
class Served:
    gateway: Gateway
    ledger: Ledger
    keys: Keys
    socket: Path


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def served(short_dir: Path, api: FakeAnthropic) -> AsyncIterator[Served]:
    config = Config(state_dir=short_dir / "state", run_dir=short_dir / "run")
    ledger, keys = Ledger(), Keys({"alice": Credential("api_key", "sk-ant-alices-own")})
    gateway = Gateway(config, api.base_url, ledger, keys)
    sock_dir = short_dir / "alice"
    sock_dir.mkdir(mode=0o700)
    path = await gateway.open("alice", sock_dir, None)
    try:
        yield Served(gateway, ledger, keys, path)
    finally:
        await gateway.close_all(grace=1.0)


async def test_an_agent_whose_budget_is_spent_gets_402_and_nothing_goes_out(
    served: Served, api: FakeAnthropic
) -> None:
    served.ledger.refuse["alice"] = "alice's budget for today is spent"

    async with client(served.socket) as http:
        answer = await http.post("/v1/messages", json=message())

    assert answer.status_code == 402
    assert error_of(answer.content) == {
        "type": "billing_error",
        "message": "hyperhive: alice's budget for today is spent",
    }
    assert api.requests == []


async def test_an_agent_without_a_credential_gets_401(served: Served, api: FakeAnthropic) -> None:
    served.keys.by_agent.clear()

    async with client(served.socket) as http:
        answer = await http.post("/v1/messages", json=message())

    assert answer.status_code == 401
    error = error_of(answer.content)
    assert error["type"] == "authentication_error"
    assert "no credential in the hive for alice" in error["message"]
    assert api.requests == []


async def test_a_token_goes_as_bearer_with_the_oauth_beta_added(
    served: Served, api: FakeAnthropic
) -> None:
    served.keys.by_agent["alice"] = Credential("oauth_token", "sk-ant-oat01-alices-token")
    headers = {"anthropic-beta": "tools-2024", "x-api-key": "placeholder"}

    async with client(served.socket) as http:
        answer = await http.post("/v1/messages", json=message(), headers=headers)

    assert answer.status_code == 200
    [request] = api.requests
    assert request.auth == {"authorization": "Bearer sk-ant-oat01-alices-token"}
    assert request.headers["anthropic-beta"] == f"tools-2024,{OAUTH_BETA}"


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "plain"])
async def test_a_2xx_answer_is_metered_once_with_its_cache_tokens(
    served: Served, api: FakeAnthropic, stream: bool
) -> None:
    api.script = Turns(auxiliary=reply_text("counted", usage=CACHED))

    async with client(served.socket) as http:
        answer = await http.post("/v1/messages", json=message(stream=stream))
        assert answer.status_code == 200

    assert served.ledger.records == [("alice", "claude-fake-1", Usage(**CACHED))]


async def test_an_error_answer_is_not_metered(served: Served, api: FakeAnthropic) -> None:
    api.script = Turns(auxiliary=reply_error(500, "api_error", "boom"))

    async with client(served.socket) as http:
        answer = await http.post("/v1/messages", json=message())

    assert answer.status_code == 500
    assert served.ledger.records == []


async def test_an_unreachable_upstream_answers_502_in_the_apis_shape(short_dir: Path) -> None:
    config = Config(state_dir=short_dir / "state", run_dir=short_dir / "run")
    keys = Keys({"alice": Credential("api_key", "sk-ant-alices-own")})
    gateway = Gateway(config, "http://127.0.0.1:9", Ledger(), keys)  # discard: refused
    sock_dir = short_dir / "alice"
    sock_dir.mkdir(mode=0o700)
    try:
        path = await gateway.open("alice", sock_dir, None)
        async with client(path) as http:
            answer = await http.post("/v1/messages", json=message())
    finally:
        await gateway.close_all(grace=1.0)

    assert answer.status_code == 502
    error = error_of(answer.content)
    assert error["type"] == "api_error"
    assert "sk-ant" not in error["message"]
