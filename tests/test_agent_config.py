"""``agent.toml`` parsing: good files give a config, every mistake names its field."""

from __future__ import annotations

import pytest

from hyperhive.core.agent_config import (
    AgentConfig,
    BadConfig,
    Sandbox,
    default_agent_toml,
    parse_agent_toml,
)
from hyperhive.errors import BadName


def refused(text: str) -> str:
    with pytest.raises(BadConfig) as raised:
        parse_agent_toml(text)
    assert raised.value.code == "bad_config"
    return raised.value.message


def test_an_empty_file_gives_the_defaults() -> None:
    assert parse_agent_toml("") == AgentConfig(
        role=None,
        model=None,
        allow_send=("hm1nd", "operator"),
        sandbox=Sandbox(network=True, memory_mb=None, ro_binds=()),
    )


def test_a_full_file_is_read_field_by_field() -> None:
    config = parse_agent_toml(
        """
        role = "You review code."
        model = "claude-sonnet-4-5"
        allow_send = ["hm1nd", "bob", "operator"]

        [sandbox]
        network = false
        memory_mb = 2048
        ro_binds = ["/srv/data", "/nix/store"]
        """
    )
    assert config == AgentConfig(
        role="You review code.",
        model="claude-sonnet-4-5",
        allow_send=("hm1nd", "bob", "operator"),
        sandbox=Sandbox(network=False, memory_mb=2048, ro_binds=("/srv/data", "/nix/store")),
    )


def test_invalid_toml_is_refused_with_its_line() -> None:
    message = refused('role = "fine"\nmodel = \n')
    assert message.startswith("agent.toml is not valid TOML:")
    assert "line 2" in message


def test_an_unknown_key_is_refused_with_a_suggestion() -> None:
    assert refused('rol = "x"') == "agent.toml: unknown key 'rol' (did you mean 'role'?)"


def test_an_unknown_sandbox_key_is_refused_with_a_suggestion() -> None:
    assert (
        refused("[sandbox]\nnetwrok = false")
        == "agent.toml: unknown key 'sandbox.netwrok' (did you mean 'sandbox.network'?)"
    )


def test_an_unknown_key_with_no_near_miss_gets_no_suggestion() -> None:
    assert refused("colour = 'blue'") == "agent.toml: unknown key 'colour'"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("role = 3", "role must be a string (got 3)"),
        ('role = "' + "r" * 8001 + '"', "role is 8001 characters; the limit is 8000"),
        ('model = "two words"', "model must be one word"),
        ('model = ""', "model must be one word"),
        ('model = "' + "m" * 201 + '"', "model must be one word of at most 200"),
        ("model = 4", "model must be one word"),
        ('allow_send = "bob"', "allow_send must be a list of names (got 'bob')"),
        ('allow_send = ["Bob"]', "allow_send[0]: invalid agent name 'Bob'"),
        ('allow_send = ["bob", 7]', "allow_send[1]: invalid agent name 7"),
        ('allow_send = ["c0re"]', "allow_send[0]: 'c0re' is reserved"),
        ("sandbox = 1", "sandbox must be a table (got 1)"),
        ('[sandbox]\nnetwork = "no"', "sandbox.network must be true or false (got 'no')"),
        (
            "[sandbox]\nmemory_mb = 'lots'",
            "sandbox.memory_mb must be a positive integer (got 'lots')",
        ),
        ("[sandbox]\nmemory_mb = 0", "sandbox.memory_mb must be a positive integer (got 0)"),
        ("[sandbox]\nmemory_mb = -5", "sandbox.memory_mb must be a positive integer (got -5)"),
        ("[sandbox]\nmemory_mb = 1.5", "sandbox.memory_mb must be a positive integer (got 1.5)"),
        ("[sandbox]\nmemory_mb = true", "sandbox.memory_mb must be a positive integer (got True)"),
        ("[sandbox]\nmemory_mb = 2000000", "sandbox.memory_mb must be at most 1048576"),
        ("[sandbox]\nro_binds = '/srv'", "sandbox.ro_binds must be a list of paths"),
        ("[sandbox]\nro_binds = ['srv']", "sandbox.ro_binds[0] must be an absolute path"),
        ("[sandbox]\nro_binds = ['/srv', 3]", "sandbox.ro_binds[1] must be an absolute path"),
        ("[sandbox]\nro_binds = ['/srv/../etc']", "sandbox.ro_binds[0] must not contain '..'"),
        ("[sandbox]\nro_binds = ['/a b']", "sandbox.ro_binds[0] may use only letters"),
        ("[sandbox]\nro_binds = ['/a:/b']", "sandbox.ro_binds[0] may use only letters"),
        (
            "[sandbox]\nro_binds = ['/var/lib/hyperhive/agents/bob']",
            "sandbox.ro_binds[0]: /var/lib/hyperhive/agents/bob would expose /var/lib/hyperhive",
        ),
        ("[sandbox]\nro_binds = ['/run/hyperhive']", "would expose /run/hyperhive"),
        ("[sandbox]\nro_binds = ['/var/lib']", "/var/lib would expose /var/lib/hyperhive"),
        ("[sandbox]\nro_binds = ['/']", "/ would expose /run/hyperhive"),
        ("[sandbox]\nro_binds = ['/x" + "y" * 1024 + "']", "may use only letters"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(text: str, message: str) -> None:
    got = refused(text)
    assert got.startswith("agent.toml")
    assert message in got


def test_too_many_ro_binds_are_refused() -> None:
    binds = ", ".join(f"'/srv/d{i}'" for i in range(33))
    assert "more than 32 entries" in refused(f"[sandbox]\nro_binds = [{binds}]")


def test_a_huge_file_is_refused_before_parsing() -> None:
    assert refused("#" * (256 * 1024 + 1)) == "agent.toml is over 256 KiB"


def test_the_real_state_and_run_dirs_can_be_protected_too() -> None:
    text = "[sandbox]\nro_binds = ['/home/op/.local/state/hyperhive']"
    assert parse_agent_toml(text).sandbox.ro_binds == ("/home/op/.local/state/hyperhive",)
    with pytest.raises(BadConfig, match=r"would expose /home/op/\.local/state/hyperhive"):
        parse_agent_toml(text, protected=("/home/op/.local/state/hyperhive",))


def test_paths_next_to_the_protected_ones_are_fine() -> None:
    text = "[sandbox]\nro_binds = ['/var/lib/hyperhive2', '/run/user']"
    assert parse_agent_toml(text).sandbox.ro_binds == ("/var/lib/hyperhive2", "/run/user")


def test_repeated_entries_are_kept_once() -> None:
    config = parse_agent_toml(
        "allow_send = ['bob', 'bob', '*']\n[sandbox]\nro_binds = ['/srv/', '/srv']"
    )
    assert config.allow_send == ("bob", "*")
    assert config.sandbox.ro_binds == ("/srv",)


def test_allow_send_accepts_everyone_the_operator_and_the_manager() -> None:
    config = parse_agent_toml('allow_send = ["*", "operator", "hm1nd"]')
    assert config.allow_send == ("*", "operator", "hm1nd")


def test_an_empty_allow_send_means_nobody() -> None:
    assert parse_agent_toml("allow_send = []").allow_send == ()


def test_a_blank_role_counts_as_no_role() -> None:
    assert parse_agent_toml('role = "  "').role is None


def test_model_aliases_with_brackets_are_accepted() -> None:
    assert parse_agent_toml('model = "sonnet[1m]"').model == "sonnet[1m]"


@pytest.mark.parametrize("name", ["alice", "hm1nd", "a-9"])
def test_the_default_file_parses_to_the_defaults(name: str) -> None:
    config = parse_agent_toml(default_agent_toml(name))
    expected = ("*",) if name == "hm1nd" else ("hm1nd", "operator")
    assert config == AgentConfig(allow_send=expected)


def test_the_default_file_explains_itself() -> None:
    text = default_agent_toml("alice")
    assert "h-alice" in text
    assert "request_apply_commit" in text
    for key in ("role", "model", "allow_send", "network", "memory_mb", "ro_binds"):
        assert key in text


def test_the_default_file_needs_a_valid_name() -> None:
    with pytest.raises(BadName):
        default_agent_toml("Not A Name")


def test_a_tool_policy_is_read_in_claude_codes_rule_syntax() -> None:
    config = parse_agent_toml(
        "[tools]\n"
        'allow = ["Read", "Edit", "Bash", "WebFetch(domain:example.com)", "mcp__hive__send"]\n'
        'ask = ["Bash(git push:*)"]\n'
        'deny = ["WebSearch", "WebSearch"]\n'
    )
    assert config.tools.to_wire() == {
        "allow": ["Read", "Edit", "Bash", "WebFetch(domain:example.com)", "mcp__hive__send"],
        "ask": ["Bash(git push:*)"],
        "deny": ["WebSearch"],
    }
    # A list left out is the backend's default, not "nothing".
    assert parse_agent_toml('[tools]\ndeny = ["WebSearch"]').tools.allow is None


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[tools]\nallw = ["Read"]', "unknown key 'tools.allw' (did you mean 'tools.allow'?)"),
        ('[tools]\nallow = "Read"', "tools.allow must be a list of rules"),
        ('[tools]\nask = ["bash"]', "tools.ask[0]: 'bash' is not a rule"),
        ('[tools]\ndeny = ["Read", "Bash("]', "tools.deny[1]: 'Bash(' is not a rule"),
        ('[tools]\nallow = ["Bash()"]', "tools.allow[0]: 'Bash()' has an empty specifier"),
        ('[tools]\nallow = ["Bash(ls\\n)"]', "tools.allow[0]: a rule is 1-512 printable"),
        ("[tools]\nallow = [1]", "tools.allow[0] must be a string"),
        ('tools = "all"', "tools must be a table"),
        ('[workspace]\nrepo = "srv/git"', "workspace.repo must be an absolute path"),
        ('[workspace]\nrepo = "/srv/../etc"', "workspace.repo must not contain '..'"),
        ('[workspace]\nbase = "--upload-pack=x"', "workspace.base must be a branch name"),
        ('[workspace]\nbase = "a..b"', "workspace.base must be a branch name"),
        ('[workspace]\nbranch = "x"', "unknown key 'workspace.branch'"),
    ],
)
def test_a_bad_tools_or_workspace_table_is_refused_naming_the_field(toml: str, named: str) -> None:
    with pytest.raises(BadConfig) as err:
        parse_agent_toml(toml)
    assert named in err.value.message
    assert err.value.code == "bad_config"


def test_a_workspace_names_a_host_repo_and_a_base_branch() -> None:
    workspace = parse_agent_toml('[workspace]\nrepo = "/srv/git/project"\n').workspace
    assert (workspace.repo, workspace.base) == ("/srv/git/project", "main")
    assert parse_agent_toml("").workspace.repo is None
