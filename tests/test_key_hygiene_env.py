"""No secret of the core's env reaches a container, and behind the gateway none reaches
the CLI either: the env the core forwards and the env the harness gives its CLI."""

from __future__ import annotations

from hyperhive.agent.claude import GATEWAY_KEY, engine_env
from hyperhive.core.containers import forwarded_env

CORE_ENV = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-the-hives",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/",
    "ANTHROPIC_AUTH_TOKEN": "bearer-abc",
    "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-xyz",
    "CLAUDE_CODE_MAX_RETRIES": "0",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "5",
    "HYPERHIVE_LOG_LEVEL": "DEBUG",
    "HYPERHIVE_DATABASE_URL": "postgresql://hive:s3cret@db/hive",
    "HYPERHIVE_HOST_NAME": "rack-a",
    "HTTPS_PROXY": "http://proxy:3128",
    "PROXY_PASSWORD": "hunter2",
    "GITHUB_TOKEN": "ghp_x",
}


def test_the_core_forwards_harmless_settings_and_no_secret_or_api_address() -> None:
    forwarded = forwarded_env(
        {
            **CORE_ENV,
            "HYPERHIVE_FORWARD_ENV": "HTTPS_PROXY,PROXY_PASSWORD,GITHUB_TOKEN,"
            "HYPERHIVE_DATABASE_URL",
        }
    )
    assert forwarded == {
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HYPERHIVE_LOG_LEVEL": "DEBUG",
        "HTTPS_PROXY": "http://proxy:3128",
    }


def test_forward_env_cannot_name_an_anthropic_variable() -> None:
    named = {**CORE_ENV, "HYPERHIVE_FORWARD_ENV": "ANTHROPIC_API_KEY,ANTHROPIC_BASE_URL"}
    assert not any(k.startswith("ANTHROPIC_") for k in forwarded_env(named))


def test_behind_the_gateway_the_cli_gets_its_address_a_placeholder_and_no_secret() -> None:
    harness = {"CLAUDE_CODE_MAX_RETRIES": "0", "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-h"}
    inherited = {**CORE_ENV, "PATH": "/usr/bin"}  # what the SDK passes through by itself
    env = engine_env(harness, inherited, 41234)
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:41234"
    assert env["ANTHROPIC_API_KEY"] == GATEWAY_KEY
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    blanked = {"ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "PROXY_PASSWORD", "GITHUB_TOKEN"}
    assert {k for k, v in env.items() if v == ""} >= blanked
    # Whatever the SDK merges in, every secret the harness saw is overridden here.
    merged = {**inherited, **env}
    assert not set(merged.values()) & {v for k, v in CORE_ENV.items() if "KEY" in k or "TOKEN" in k}
    assert "PATH" not in env


def test_without_a_gateway_the_cli_uses_its_own_env_as_before() -> None:
    env = engine_env({"ANTHROPIC_API_KEY": "sk-own", "CLAUDE_CODE_MAX_RETRIES": "0"}, {}, None)
    assert env == {"ANTHROPIC_API_KEY": "sk-own", "CLAUDE_CODE_MAX_RETRIES": "0"}
