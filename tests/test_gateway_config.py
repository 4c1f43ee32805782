"""The gateway's settings: where it forwards, and its caps (config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperhive.config import DEFAULT_UPSTREAM_URL, Config, resolve, upstream_url
from hyperhive.errors import ConfigError

BASE = {"HYPERHIVE_STATE_DIR": "/tmp/hh-state", "HYPERHIVE_RUN_DIR": "/tmp/hh-run"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"ANTHROPIC_BASE_URL": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"),
        (
            {"HYPERHIVE_UPSTREAM_URL": "https://proxy.example/api/", "ANTHROPIC_BASE_URL": "x"},
            "https://proxy.example/api",
        ),
    ],
    ids=["unset", "the core's ANTHROPIC_BASE_URL", "HYPERHIVE_UPSTREAM_URL wins"],
)
def test_the_upstream_comes_from_the_env(env: dict[str, str], expected: str | None) -> None:
    assert resolve(env={**BASE, **env}, uid=1000).upstream_url == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host",
        "file:///etc/passwd",
        "http://",
        "http://user:secret@host",
        "http://host:99999",
        "http://host/?q=1",
        "api.anthropic.com",
    ],
)
def test_an_upstream_that_is_not_http_host_port_path_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="HYPERHIVE_UPSTREAM_URL"):
        resolve(env={**BASE, "HYPERHIVE_UPSTREAM_URL": url}, uid=1000)


def test_without_a_configured_upstream_the_hives_env_then_the_api_is_used() -> None:
    config = Config(state_dir=Path("/s"), run_dir=Path("/r"))

    assert upstream_url(config, {"ANTHROPIC_BASE_URL": "http://127.0.0.1:1234/"}) == (
        "http://127.0.0.1:1234"
    )
    assert upstream_url(config, {}) == DEFAULT_UPSTREAM_URL


def test_gateway_caps_are_read_from_the_env() -> None:
    env = {
        **BASE,
        "HYPERHIVE_GATEWAY_CONCURRENCY": "3",
        "HYPERHIVE_GATEWAY_PER_AGENT": "1",
        "HYPERHIVE_GATEWAY_MAX_BODY": "1024",
        "HYPERHIVE_GATEWAY_RETRY_FOR": "30",
    }

    config = resolve(env=env, uid=1000)

    assert (config.gateway_concurrency, config.gateway_per_agent) == (3, 1)
    assert (config.gateway_max_body, config.gateway_retry_for) == (1024, 30.0)
