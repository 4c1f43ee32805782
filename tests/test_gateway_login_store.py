"""The credentials only the core holds: stored 0600 in a 0700 dir, an agent's own before
the hive's before the core's env, never read through a symlink, never in an answer or
an event; and the login ops over the real host and agent sockets."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from hyperhive.client import Client, RemoteError
from hyperhive.config import Config
from hyperhive.core.gateway.credentials import HiveCredentials
from hyperhive.core.gateway.seams import Credential
from hyperhive.core.hive import Hive
from hyperhive.errors import BadName, BadRequest

KEY = "sk-ant-api03-the-agents-own-key"
HIVE_KEY = "sk-ant-api03-the-hives-key"
ENV_KEY = "sk-ant-api03-from-the-cores-env"


def test_an_agents_own_credential_wins_over_the_hives_and_the_hive_over_the_env(
    tmp_path: Path,
) -> None:
    saved: list[str | None] = []
    store = HiveCredentials(tmp_path, {"ANTHROPIC_API_KEY": ENV_KEY}, on_saved=saved.append)
    assert store.for_agent("alice") == Credential("api_key", ENV_KEY)
    store.save("api_key", f"  {HIVE_KEY}\n")
    assert store.for_agent("alice") == Credential("api_key", HIVE_KEY)
    store.save("oauth_token", KEY, "alice")
    assert store.for_agent("alice") == Credential("oauth_token", KEY)
    assert store.for_agent("bob") == Credential("api_key", HIVE_KEY)
    assert store.status("alice") == {"agent": True, "hive": True, "env": True}
    assert store.status("bob") == {"agent": False, "hive": True, "env": True}
    assert saved == [None, "alice"] and store.generation == 2
    assert store.clear("alice") and not store.clear("alice")
    assert store.for_agent("alice") == Credential("api_key", HIVE_KEY)
    assert KEY not in repr(store.for_agent("alice"))


def test_tokens_from_the_env_are_oauth_tokens_and_none_is_none(tmp_path: Path) -> None:
    token = HiveCredentials(tmp_path, {"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-xyz123456"})
    assert token.for_agent("a") == Credential("oauth_token", "sk-ant-oat01-xyz123456")
    auth = HiveCredentials(tmp_path, {"ANTHROPIC_AUTH_TOKEN": "bearer-token-1"})
    assert auth.for_agent("a") == Credential("oauth_token", "bearer-token-1")
    assert HiveCredentials(tmp_path, {}).for_agent("a") is None


def test_stored_files_are_the_cores_alone_and_survive_a_new_store(tmp_path: Path) -> None:
    HiveCredentials(tmp_path, {}).save("api_key", KEY, "alice")
    root = tmp_path / "credentials"
    for directory in (root, root / "agents"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    stored = root / "agents" / "alice.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert sorted(p.name for p in (root / "agents").iterdir()) == ["alice.json"]  # no temp
    assert HiveCredentials(tmp_path, {}).for_agent("alice") == Credential("api_key", KEY)


def test_a_symlink_planted_for_a_credential_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text('{"kind": "api_key", "value": "sk-ant-planted-key"}')
    agents = tmp_path / "credentials" / "agents"
    agents.mkdir(parents=True)
    (agents / "alice.json").symlink_to(target)
    store = HiveCredentials(tmp_path, {})
    assert store.for_agent("alice") is None
    store.save("api_key", KEY, "alice")  # replaces the link itself, never writes through it
    assert not (agents / "alice.json").is_symlink()
    assert "planted" in target.read_text()


@pytest.mark.parametrize("value", ["short", "has a space in it", "x" * 513, "ünïcode-key-1"])
def test_a_value_that_cannot_be_a_key_is_refused_without_echoing_it(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        HiveCredentials(tmp_path, {}).save("api_key", value, "alice")
    assert value.strip() not in refused.value.message
    assert not (tmp_path / "credentials" / "agents" / "alice.json").exists()


def test_names_that_are_no_agents_cannot_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(BadName):
        HiveCredentials(tmp_path, {}).save("api_key", KEY, "../hive")


async def test_the_login_ops_save_for_an_agent_and_wake_it_without_the_secret(
    config: Config,
) -> None:
    hive = Hive(config, env={})
    await hive.start()
    try:
        await hive.add_agent("alice", None)
        events = hive.bus.subscribe()
        alice = hive.socket_path(hive.registry.get("alice"))
        async with await Client.connect(alice) as agent:
            first = await agent.call("login_state")
            assert first["available"] is False
            waiting = asyncio.create_task(
                agent.call("login_state", after=first["generation"], wait=30)
            )
            async with await Client.connect(config.host_socket) as op:
                saved = await op.call("login_save", agent="alice", kind="api_key", value=KEY)
                status = await op.call("login_status", agent="alice")
                with pytest.raises(RemoteError) as bad:
                    await op.call("login_save", agent="alice", kind="api_key", value="nope")
            woke = await asyncio.wait_for(waiting, 10)
            with pytest.raises(RemoteError):
                await agent.call("login_save", kind="api_key", value=KEY)  # operator only
        assert woke == {"available": True, "generation": first["generation"] + 1}
        assert saved == {"agent": "alice", "saved": "api_key"}
        assert status == {"agent": True, "hive": False, "env": False}
        assert "nope" not in str(bad.value)
        event = await asyncio.wait_for(_next_login(events), 10)
        assert event["agent"] == "alice" and KEY not in repr(event)
    finally:
        await hive.shutdown(grace=2)
    assert KEY not in config.db_path.read_bytes().decode(errors="replace")
    assert os.stat(config.state_dir / "credentials").st_mode & 0o077 == 0


async def _next_login(events: object) -> dict[str, object]:
    async for event in events:  # type: ignore[attr-defined]
        if event["type"] == "login":
            return dict(event)
    raise AssertionError("the bus ended")
