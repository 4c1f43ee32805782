"""Config is resolved once: flags over env vars over DESIGN §2's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperhive import config
from hyperhive.errors import ConfigError


def test_root_gets_the_system_paths() -> None:
    resolved = config.resolve(env={}, uid=0)
    assert resolved.state_dir == Path("/var/lib/hyperhive")
    assert resolved.run_dir == Path("/run/hyperhive")
    assert resolved.host_socket == Path("/run/hyperhive/host.sock")
    assert (resolved.listen_host, resolved.listen_port, resolved.backend) == (
        "127.0.0.1",
        7000,
        "auto",
    )


def test_a_user_gets_xdg_paths() -> None:
    env = {"XDG_STATE_HOME": "/home/u/.st", "XDG_RUNTIME_DIR": "/run/user/1000"}
    resolved = config.resolve(env=env, uid=1000)
    assert resolved.state_dir == Path("/home/u/.st/hyperhive")
    assert resolved.run_dir == Path("/run/user/1000/hyperhive")


def test_without_a_runtime_dir_sockets_live_under_the_state_dir() -> None:
    resolved = config.resolve(env={"HOME": "/home/u"}, uid=1000)
    assert resolved.state_dir == Path("/home/u/.local/state/hyperhive")
    assert resolved.run_dir == Path("/home/u/.local/state/hyperhive/run")


def test_flags_win_over_env_vars() -> None:
    env = {
        "HYPERHIVE_STATE_DIR": "/env/state",
        "HYPERHIVE_RUN_DIR": "/env/run",
        "HYPERHIVE_LISTEN": "0.0.0.0:9000",
        "HYPERHIVE_BACKEND": "bwrap",
    }
    from_env = config.resolve(env=env, uid=0)
    assert (from_env.state_dir, from_env.run_dir) == (Path("/env/state"), Path("/env/run"))
    assert (from_env.listen_host, from_env.listen_port, from_env.backend) == (
        "0.0.0.0",
        9000,
        "bwrap",
    )
    flags = config.resolve(state_dir="/f/s", listen="[::1]:7001", backend="process", env=env, uid=0)
    assert flags.state_dir == Path("/f/s")
    assert (flags.listen_host, flags.listen_port, flags.backend) == ("::1", 7001, "process")


def test_the_agent_sockets_follow_the_design_layout() -> None:
    resolved = config.resolve(run_dir="/r", env={}, uid=0)
    assert resolved.agent_socket("alice", manager=False) == Path("/r/agents/alice/mcp.sock")
    assert resolved.agent_socket("hm1nd", manager=True) == Path("/r/manager/mcp.sock")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backend", "docker"),
        ("listen", "7000"),
        ("listen", "host:notaport"),
        ("listen", "host:70000"),
    ],
)
def test_bad_settings_are_clear_errors(field: str, value: str) -> None:
    with pytest.raises(ConfigError, match=field if field == "backend" else "listen"):
        config.resolve(env={}, uid=0, **{field: value})


def test_a_bad_numeric_env_var_is_named_in_the_error() -> None:
    with pytest.raises(ConfigError, match="HYPERHIVE_MAX_BODY"):
        config.resolve(env={"HYPERHIVE_MAX_BODY": "lots"}, uid=0)


def test_clients_find_the_run_dir_the_same_way() -> None:
    assert config.run_dir_from("/flag", {"HYPERHIVE_RUN_DIR": "/env"}, 0) == Path("/flag")
    assert config.run_dir_from(None, {"HYPERHIVE_RUN_DIR": "/env"}, 0) == Path("/env")
    assert config.run_dir_from(None, {}, 0) == Path("/run/hyperhive")


def test_agents_run_at_niceness_10_unless_the_env_names_another() -> None:
    env = {"HYPERHIVE_STATE_DIR": "/s"}
    assert config.resolve(env=env, uid=1000).agent_nice == 10
    assert config.resolve(env={**env, "HYPERHIVE_AGENT_NICE": "0"}, uid=1000).agent_nice == 0
    for bad in ("-1", "20", "high"):
        with pytest.raises(ConfigError, match="HYPERHIVE_AGENT_NICE"):
            config.resolve(env={**env, "HYPERHIVE_AGENT_NICE": bad}, uid=1000)
