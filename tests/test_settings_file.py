"""hive.toml parsed strictly: every mistake a ConfigError naming the field, a good file
exactly the Settings it says, secrets read from files the owner alone can read, and the
env's pins winning over the file."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from hyperhive.config import Config, resolve
from hyperhive.core.settings_source import (
    SettingsSource,
    changed_tables,
    env_over_file,
    gateway_caps,
    hive_budget,
)
from hyperhive.errors import ConfigError
from hyperhive.settings import (
    CommandSink,
    NotifySettings,
    NtfySink,
    PolicyRule,
    Settings,
    StallSettings,
    WebhookSink,
)
from hyperhive.settings_file import MAX_FILE, MAX_RULES, load_settings, parse_settings

FULL = """
[budget]
usd_per_day = 20.0
tokens_per_day = 5_000_000

[gateway]
concurrency = 8
per_agent = 2

[stall]
thinking = "10m"
approval = "1h30m"
lease = false

[notify]
max_tries = 5
backoff_first = 2
backoff_max = "5m"
digest_after = 3
digest_window = "30s"
dashboard_url = "https://hive.example:8443/"

[[notify.webhook]]
name = "ops"
url = "https://hooks.example/hive"
secret = "hmac-key"
events = ["approval", "failed"]
timeout = 5

[[notify.ntfy]]
name = "phone"
url = "https://ntfy.sh/my-hive"
token = "tk_abc"
priority = 4
tags = ["bee", "warning"]

[[notify.command]]
name = "log"
argv = ["logger", "-t", "hive"]
events = ["digest"]

[[policy]]
name = "small-hive"
kind = "spawn"
decision = "approve"
requester = "hm1nd"
max_agents = 5

[[policy]]
name = "cosmetic"
kind = "apply_commit"
decision = "approve"
agent = "worker-*"
fields = ["role", "model", "budget.usd_per_day"]

[[policy]]
name = "no-rm"
kind = "tool_use"
decision = "deny"
tool = "Bash"
input = '.*"rm -rf.*'
"""

EXPECTED = Settings(
    notify=NotifySettings(
        sinks=(
            WebhookSink(
                "ops",
                "https://hooks.example/hive",
                secret="hmac-key",
                events=frozenset({"approval", "failed"}),
                timeout=5.0,
            ),
            NtfySink(
                "phone",
                "https://ntfy.sh/my-hive",
                token="tk_abc",
                priority=4,
                tags=("bee", "warning"),
            ),
            CommandSink("log", ("logger", "-t", "hive"), events=frozenset({"digest"})),
        ),
        max_tries=5,
        backoff_first=2.0,
        backoff_max=300.0,
        digest_after=3,
        digest_window=30.0,
        dashboard_url="https://hive.example:8443",
    ),
    policies=(
        PolicyRule("small-hive", "spawn", "approve", requester="hm1nd", max_agents=5),
        PolicyRule(
            "cosmetic",
            "apply_commit",
            "approve",
            agent="worker-*",
            fields=frozenset({"role", "model", "budget.usd_per_day"}),
        ),
        PolicyRule("no-rm", "tool_use", "deny", tool="Bash", input='.*"rm -rf.*'),
    ),
    stall=StallSettings(thinking=600.0, approval=5400.0, lease=None),
    budget_usd_per_day=20.0,
    budget_tokens_per_day=5_000_000,
    gateway_concurrency=8,
    gateway_per_agent=2,
)

HOOK = '[[notify.webhook]]\nname = "a"\nurl = "https://h.example/x"\n'
RULE = '[[policy]]\nname = "r"\n'


def test_a_full_example_is_exactly_the_settings_it_says() -> None:
    assert parse_settings(FULL, source="hive.toml") == EXPECTED


def test_an_empty_file_and_a_missing_one_are_the_defaults(tmp_path: Path) -> None:
    assert parse_settings("", source="hive.toml") == Settings()
    assert load_settings(tmp_path / "hive.toml") == Settings()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[budgte]\n", "hive.toml: budgte: unknown table (did you mean 'budget'?)"),
        ("[budget]\nusd_per_dya = 1\n", "budget.usd_per_dya: unknown key (did you mean"),
        ("budget = 3\n", "hive.toml: budget: must be a table"),
        ("[budget]\nusd_per_day = -1\n", "budget.usd_per_day: expected a positive number"),
        ("[budget]\nusd_per_day = 0\n", "budget.usd_per_day: expected a positive number"),
        ("[budget]\nusd_per_day = nan\n", "budget.usd_per_day: expected a positive number"),
        ("[budget]\nusd_per_day = inf\n", "budget.usd_per_day: expected a positive number"),
        ('[budget]\nusd_per_day = "5"\n', "budget.usd_per_day: expected a positive number"),
        ("[budget]\nusd_per_day = true\n", "budget.usd_per_day: expected a positive number"),
        ("[budget]\ntokens_per_day = 1.5\n", "budget.tokens_per_day: expected an integer"),
        ("[gateway]\nconcurrency = 0\n", "gateway.concurrency: expected an integer from 1"),
        ("[gateway]\nper_agent = -2\n", "gateway.per_agent: expected an integer from 1"),
        ("[gateway]\nburst = 2\n", "gateway.burst: unknown key"),
        ('[stall]\nthinking = "10x"\n', "stall.thinking: expected a duration"),
        ("[stall]\nthinking = true\n", "stall.thinking: expected a duration"),
        ("[stall]\nlease = -5\n", "stall.lease: expected a duration"),
        ('[stall]\nlease = "0s"\n', "stall.lease: expected a duration"),
        ('[stall]\nlease = "999d"\n', "stall.lease: expected a duration"),
        ("[stall]\nquestion = 5\n", "stall.question: unknown key"),
        ("[notify]\nmax_tries = 0\n", "notify.max_tries: expected an integer"),
        ("[notify]\nbackoff_first = nan\n", "notify.backoff_first: expected a duration"),
        (
            "[notify]\nbackoff_first = 60\nbackoff_max = 10\n",
            "notify.backoff_max: must be at least backoff_first",
        ),
        ('[notify]\ndashboard_url = "hive.example"\n', "notify.dashboard_url: expected http(s)"),
        ("notify = []\n", "hive.toml: notify: must be a table"),
        ("[notify]\nwebhook = 3\n", "notify.webhook: must be an array of tables"),
        ('[[notify.webhook]]\nurl = "https://h.example/"\n', "notify.webhook[0].name: missing"),
        (
            HOOK + '[[notify.webhook]]\nname = "b"\nurl = "ftp://h.example/x"\n',
            "hive.toml: notify.webhook[1].url: expected http(s)://host[:port][/path]",
        ),
        (
            '[[notify.webhook]]\nname = "a"\nurl = "https://user:pw@h.example/"\n',
            "notify.webhook[0].url: expected http(s)://host[:port][/path]",
        ),
        (
            '[[notify.webhook]]\nname = "a"\nurl = "https://h.example/?k=1"\n',
            "notify.webhook[0].url: expected",
        ),
        ('[[notify.webhook]]\nname = "a"\n', "notify.webhook[0].url: expected"),
        (HOOK + 'events = ["approvals"]\n', "notify.webhook[0].events: unknown event 'approvals'"),
        (HOOK + "events = []\n", "notify.webhook[0].events: expected a list of 1 to"),
        (HOOK + 'events = "approval"\n', "notify.webhook[0].events: expected a list"),
        (HOOK + "timeout = 0\n", "notify.webhook[0].timeout: expected a duration"),
        (HOOK + "timeout = 3600\n", "notify.webhook[0].timeout: expected a duration"),
        (HOOK + 'secret = ""\n', "notify.webhook[0].secret: expected a non-empty string"),
        (
            HOOK + 'secret = "x"\nsecret_file = "s"\n',
            "notify.webhook[0].secret: give secret or secret_file, not both",
        ),
        (HOOK + 'token = "x"\n', "notify.webhook[0].token: unknown key"),
        (HOOK + HOOK, "notify.webhook[1].name: 'a' is used twice"),
        (
            HOOK + '[[notify.command]]\nname = "a"\nargv = ["true"]\n',
            "notify.command[0].name: 'a' is used twice",
        ),
        ('[[notify.webhook]]\nname = "a b"\nurl = "https://h.example/"\n', "webhook[0].name:"),
        (
            '[[notify.ntfy]]\nname = "p"\nurl = "https://ntfy.sh/"\n',
            "notify.ntfy[0].url: expected http(s)://host[:port]/topic",
        ),
        (
            '[[notify.ntfy]]\nname = "p"\nurl = "https://ntfy.sh/t"\npriority = 6\n',
            "notify.ntfy[0].priority: expected an integer from 1 to 5",
        ),
        (
            '[[notify.ntfy]]\nname = "p"\nurl = "https://ntfy.sh/t"\ntags = [1]\n',
            "notify.ntfy[0].tags: expected strings",
        ),
        ('[[notify.command]]\nname = "c"\nargv = []\n', "notify.command[0].argv: expected a list"),
        ('[[notify.command]]\nname = "c"\nargv = [""]\n', "notify.command[0].argv: the program"),
        ('[[notify.command]]\nname = "c"\n', "notify.command[0].argv: expected a list"),
        ("[[notify.sms]]\n", "notify.sms: unknown key"),
        (RULE + 'kind = "spawn"\n', "policy[0].decision: expected one of approve, deny"),
        (
            RULE + 'kind = "merge"\ndecision = "approve"\n',
            "policy[0].kind: expected one of spawn, apply_commit, tool_use",
        ),
        (RULE + 'kind = "spawn"\ndecision = "maybe"\n', "policy[0].decision: expected one of"),
        (
            RULE + 'kind = "spawn"\ndecision = "approve"\nfields = ["role"]\n',
            'policy[0].fields: only for kind = "apply_commit" (this rule is "spawn")',
        ),
        (
            RULE + 'kind = "apply_commit"\ndecision = "approve"\nmax_agents = 3\n',
            'policy[0].max_agents: only for kind = "spawn"',
        ),
        (
            RULE + 'kind = "spawn"\ndecision = "deny"\ntool = "Bash"\n',
            'policy[0].tool: only for kind = "tool_use"',
        ),
        (
            RULE + 'kind = "apply_commit"\ndecision = "deny"\ninput = "x"\n',
            'policy[0].input: only for kind = "tool_use"',
        ),
        (
            RULE + 'kind = "tool_use"\ndecision = "deny"\ninput = "(unclosed"\n',
            "policy[0].input: not a regular expression",
        ),
        (
            RULE + 'kind = "apply_commit"\ndecision = "approve"\nfields = ["role; rm"]\n',
            "policy[0].fields: 'role; rm' does not fit",
        ),
        (
            RULE + 'kind = "spawn"\ndecision = "approve"\nmax_agents = 0\n',
            "policy[0].max_agents: expected an integer from 1",
        ),
        (
            RULE + 'kind = "spawn"\ndecision = "approve"\n' + RULE + 'kind = "spawn"\n',
            "policy[1].name: 'r' is used twice",
        ),
        (RULE + 'kind = "spawn"\ndecision = "approve"\nwhen = 1\n', "policy[0].when: unknown key"),
        ("[[policy]]\nkind = 'spawn'\ndecision = 'deny'\n", "policy[0].name: missing"),
        ("[budget\n", "hive.toml: not valid TOML"),
    ],
)
def test_a_mistake_is_a_config_error_naming_the_field(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(text, source="hive.toml")
    assert says in err.value.message


def test_more_rules_than_the_bound_are_refused() -> None:
    rule = '[[policy]]\nname = "r{}"\nkind = "spawn"\ndecision = "deny"\n'
    text = "".join(rule.format(i) for i in range(MAX_RULES + 1))
    with pytest.raises(ConfigError) as err:
        parse_settings(text, source="hive.toml")
    assert f"policy: more than {MAX_RULES}" in err.value.message


def test_a_file_over_the_size_bound_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hive.toml"
    path.write_text("# " + "x" * MAX_FILE + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "over 1024 KiB" in err.value.message


def test_an_inline_secret_in_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hive.toml"
    path.write_text(HOOK + 'secret = "hunter2"\n')
    path.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "notify.webhook[0].secret is inline" in err.value.message
    assert f"chmod 600 {path}" in err.value.message and "hunter2" not in err.value.message
    path.chmod(0o600)
    assert load_settings(path).notify.sinks[0] == WebhookSink(
        "a", "https://h.example/x", secret="hunter2"
    )


def test_a_file_without_secrets_may_be_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "hive.toml"
    path.write_text("[budget]\nusd_per_day = 3\n")
    path.chmod(0o644)
    assert load_settings(path).budget_usd_per_day == 3.0


def test_a_secret_file_is_read_relative_to_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    secret = tmp_path / "secrets" / "hook"
    secret.write_text("s3cret-value\n")
    secret.chmod(0o600)
    token = tmp_path / "ntfy-token"
    token.write_text("tk_123")
    token.chmod(0o400)
    path = tmp_path / "hive.toml"
    path.write_text(
        HOOK
        + 'secret_file = "secrets/hook"\n'
        + '[[notify.ntfy]]\nname = "p"\nurl = "https://ntfy.sh/t"\n'
        + f'token_file = "{token}"\n'
    )
    path.chmod(0o644)  # no secret inline: readable is fine
    sinks = load_settings(path).notify.sinks
    assert sinks[0] == WebhookSink("a", "https://h.example/x", secret="s3cret-value")
    assert isinstance(sinks[1], NtfySink) and sinks[1].token == "tk_123"


@pytest.mark.parametrize(
    ("content", "mode", "says"),
    [
        ("s3cret\n", 0o640, "is readable by others: chmod 600"),
        ("s3cret\n", 0o604, "is readable by others: chmod 600"),
        ("\n\n", 0o600, "is empty"),
        (None, 0o600, "cannot read"),
    ],
)
def test_a_bad_secret_file_is_refused_without_its_content(
    tmp_path: Path, content: str | None, mode: int, says: str
) -> None:
    secret = tmp_path / "hook"
    if content is not None:
        secret.write_text(content)
        secret.chmod(mode)
    path = tmp_path / "hive.toml"
    path.write_text(HOOK + 'secret_file = "hook"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "notify.webhook[0].secret_file:" in err.value.message and says in err.value.message
    assert "s3cret" not in err.value.message


def test_a_settings_path_that_is_a_directory_or_a_fifo_is_refused_without_hanging(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "hive.toml"
    os.mkfifo(fifo)
    for path in (tmp_path, fifo):
        with pytest.raises(ConfigError) as err:
            load_settings(path)
        assert "not a regular file" in err.value.message


def _config(tmp_path: Path, env: dict[str, str]) -> Config:
    return resolve(env={"HOME": str(tmp_path), **env}, uid=1000, state_dir=str(tmp_path))


def test_the_settings_file_is_the_state_dirs_unless_a_flag_or_the_env_names_one(
    tmp_path: Path,
) -> None:
    assert _config(tmp_path, {}).settings_file == tmp_path / "hive.toml"
    named = _config(tmp_path, {"HYPERHIVE_CONFIG": "/etc/hive/hive.toml"})
    assert named.settings_file == Path("/etc/hive/hive.toml")
    flag = resolve(
        env={"HOME": str(tmp_path), "HYPERHIVE_CONFIG": "/etc/x.toml"},
        uid=1000,
        config_file="/srv/h.toml",
    )
    assert flag.settings_file == Path("/srv/h.toml")


def test_a_value_the_env_sets_wins_over_the_file_and_the_rest_come_from_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "hive.toml").write_text(
        "[budget]\nusd_per_day = 20\ntokens_per_day = 900\n[gateway]\nconcurrency = 8\n"
    )
    env = {"HYPERHIVE_BUDGET_USD_PER_DAY": "3.5", "HYPERHIVE_GATEWAY_PER_AGENT": "1"}
    config = _config(tmp_path, env)
    source = SettingsSource(config)
    loaded = source.load()
    assert hive_budget(loaded, config) == (3.5, 900)
    assert gateway_caps(loaded, config) == (8, 1)
    assert source.pinned() == {
        "budget.usd_per_day": "HYPERHIVE_BUDGET_USD_PER_DAY",
        "gateway.per_agent": "HYPERHIVE_GATEWAY_PER_AGENT",
    }
    # Neither env nor file: the defaults.
    plain = _config(tmp_path / "none", {})
    assert gateway_caps(SettingsSource(plain).load(), plain) == (16, 4)


def test_env_over_file_touches_only_what_the_env_pinned(tmp_path: Path) -> None:
    config = dataclasses.replace(
        _config(tmp_path, {"HYPERHIVE_GATEWAY_CONCURRENCY": "2"}), hive_usd_per_day=None
    )
    merged = env_over_file(EXPECTED, config)
    assert merged == dataclasses.replace(EXPECTED, gateway_concurrency=2)


def test_the_changed_tables_name_what_a_reload_changes() -> None:
    assert changed_tables(EXPECTED, EXPECTED) == []
    changed = dataclasses.replace(
        EXPECTED, gateway_per_agent=1, budget_usd_per_day=None, policies=()
    )
    assert changed_tables(EXPECTED, changed) == ["budget", "gateway", "policy"]
    assert changed_tables(Settings(), EXPECTED) == [
        "budget",
        "gateway",
        "stall",
        "notify",
        "policy",
    ]
