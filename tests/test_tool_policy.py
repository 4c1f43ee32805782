"""Tool policies as pure code: the defaults per backend and role, rule matching
the way Claude Code matches, the decision for a call, the mapping of the core's
ToolUse answers, and what the harness hands the CLI and tells the model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny

from hyperhive.agent.claude import permission_options
from hyperhive.agent.permissions import MAX_INPUT, NOT_PERMITTED, Gate, core_ask, decide, from_core
from hyperhive.agent.prompts import system_prompt
from hyperhive.agent.settings import tool_policy
from hyperhive.config import Config
from hyperhive.core.agent_config import parse_agent_toml
from hyperhive.core.containers import build_spec, forwarded_env
from hyperhive.errors import BadConfig, HiveError
from hyperhive.tool_defaults import BUILTINS, MANAGER_ALLOW, READ_ONLY, defaults, shown
from hyperhive.tool_match import Where, covered, matches
from hyperhive.tool_rules import ToolPolicy, parse_rule

HERE = Where(cwd="/work", home="/root")


def rules(*texts: str) -> tuple[Any, ...]:
    return tuple(parse_rule(t, "test") for t in texts)


def names(policy_list: tuple[Any, ...] | None) -> list[str]:
    return [str(r) for r in policy_list or ()]


# -- defaults ---------------------------------------------------------------------


def test_an_isolated_agent_may_use_every_built_in_tool_by_default() -> None:
    policy = defaults(isolated=True, manager=False)
    assert names(policy.allow) == list(BUILTINS)
    assert policy.ask == () and policy.deny == ()


def test_an_unisolated_agent_reads_freely_and_asks_for_everything_else() -> None:
    policy = defaults(isolated=False, manager=False)
    assert names(policy.allow) == list(READ_ONLY)
    assert {"Read", "Glob", "Grep"} <= set(names(policy.allow))
    assert {"Bash", "Edit", "Write", "WebFetch", "NotebookEdit", "Agent"} <= set(names(policy.ask))
    assert sorted(names(policy.allow) + names(policy.ask)) == sorted(BUILTINS)
    assert policy.deny == ()


@pytest.mark.parametrize("isolated", [True, False])
def test_the_manager_keeps_its_narrow_default_on_every_backend(isolated: bool) -> None:
    policy = defaults(isolated=isolated, manager=True)
    assert names(policy.allow) == list(MANAGER_ALLOW)
    assert policy.ask == () and policy.deny == ()


def test_the_lists_an_agent_toml_sets_replace_only_those_defaults() -> None:
    configured = parse_agent_toml('[tools]\ndeny = ["Bash(git push:*)"]\n').tools
    view = shown(configured, isolated=True, manager=False)
    assert view["deny"] == ["Bash(git push:*)"]
    assert view["allow"] == list(BUILTINS) and view["ask"] == []
    assert view["default"] == {"allow": True, "ask": True, "deny": False}


def test_the_core_hands_each_container_its_completed_policy_and_never_forwards_one(
    tmp_path: Path,
) -> None:
    config = Config(state_dir=tmp_path / "state", run_dir=tmp_path / "run")
    agent = parse_agent_toml('[tools]\nask = ["WebFetch"]\n')
    for isolated, allowed in ((True, list(BUILTINS)), (False, list(READ_ONLY))):
        spec = build_spec(config, "alice", agent, tmp_path, "sha", {}, isolated=isolated)
        wire = json.loads(spec.env["HYPERHIVE_TOOL_POLICY"])
        assert wire == {"allow": allowed, "ask": ["WebFetch"], "deny": []}
    assert forwarded_env({"HYPERHIVE_TOOL_POLICY": '{"allow": ["Bash"]}'}) == {}


# -- the harness's reading of it --------------------------------------------------------


def test_a_harness_reads_the_policy_strictly_and_defaults_to_no_isolation() -> None:
    assert tool_policy(None, manager=False) == defaults(isolated=False, manager=False)
    assert tool_policy(None, manager=True) == defaults(isolated=False, manager=True)
    given = '{"allow": ["Bash(git:*)"], "ask": [], "deny": ["WebFetch"]}'
    assert tool_policy(given, manager=False) == ToolPolicy(
        rules("Bash(git:*)"), (), rules("WebFetch")
    )
    for bad in ("not json", '{"allow": []}', '{"allow": ["bash"], "ask": [], "deny": []}', "[]"):
        with pytest.raises(BadConfig):
            tool_policy(bad, manager=False)


# -- matching -----------------------------------------------------------------------

MATCHES: list[tuple[str, str, dict[str, Any], bool | None]] = [
    # bare names, and Tool(*)
    ("Bash", "Bash", {"command": "rm -rf /"}, True),
    ("Bash(*)", "Bash", {"command": "anything"}, True),
    ("Read", "Edit", {"file_path": "/work/a"}, False),
    ("Task", "Agent", {"prompt": "x"}, True),
    # Bash prefixes: whole words only
    ("Bash(git:*)", "Bash", {"command": "git status"}, True),
    ("Bash(git:*)", "Bash", {"command": "git"}, True),
    ("Bash(git:*)", "Bash", {"command": "gitk --all"}, False),
    ("Bash(git push:*)", "Bash", {"command": "git push origin main"}, True),
    ("Bash(git push:*)", "Bash", {"command": "git pull"}, False),
    ("Bash(ls *)", "Bash", {"command": "ls -la"}, True),
    ("Bash(ls *)", "Bash", {"command": "lsof"}, False),
    ("Bash(npm * --save)", "Bash", {"command": "npm install left-pad --save"}, True),
    ("Bash(npm * --save)", "Bash", {"command": "npm install left-pad"}, False),
    # Bash exact commands, quoting aside
    ("Bash(git status)", "Bash", {"command": "git status"}, True),
    ("Bash(git status)", "Bash", {"command": "git  'status'"}, True),
    ("Bash(git status)", "Bash", {"command": "git status --short"}, False),
    # any part of a compound command, a nested one, or behind an assignment
    ("Bash(rm:*)", "Bash", {"command": "echo a && rm -rf x"}, True),
    ("Bash(rm:*)", "Bash", {"command": "ls | rm x"}, True),
    ("Bash(rm:*)", "Bash", {"command": "echo ok\nrm x"}, True),
    ("Bash(rm:*)", "Bash", {"command": 'echo "$(rm x)"'}, True),
    ("Bash(rm:*)", "Bash", {"command": "echo `rm x`"}, True),
    ("Bash(rm:*)", "Bash", {"command": "FOO=1 rm x"}, True),
    ("Bash(rm:*)", "Bash", {"command": "echo 'rm x'"}, False),
    ("Bash(rm:*)", "Bash", {"command": "echo 'unclosed"}, None),
    ("Bash(rm:*)", "Bash", {}, None),
    ("Bash(rm:*)", "Read", {"file_path": "/work/rm"}, False),
    # file globs: relative to the cwd, // absolute, ~/ home, slash-less at any depth
    ("Read(./src/**)", "Read", {"file_path": "/work/src/a/b.py"}, True),
    ("Read(./src/**)", "Read", {"file_path": "src/a.py"}, True),
    ("Read(./src/**)", "Read", {"file_path": "/work/srcs/a.py"}, False),
    ("Read(./src/**)", "Read", {"file_path": "/work/src/../secret"}, False),
    ("Edit(/docs/**)", "Edit", {"file_path": "/work/docs/x.md"}, True),
    ("Edit(/docs/**)", "Edit", {"file_path": "/docs/x.md"}, False),
    ("Edit(/docs/**)", "Write", {"file_path": "/work/docs/new.md"}, True),
    ("Edit(/docs/**)", "NotebookEdit", {"notebook_path": "/work/docs/n.ipynb"}, True),
    ("Edit(/docs/**)", "Read", {"file_path": "/work/docs/x.md"}, False),
    ("Edit(//etc/**)", "Write", {"file_path": "/etc/passwd"}, True),
    ("Read(~/.ssh/**)", "Read", {"file_path": "/root/.ssh/id_ed25519"}, True),
    ("Read(~/.ssh/**)", "Read", {"file_path": "~/.ssh/config"}, True),
    ("Read(*.env)", "Read", {"file_path": "/work/deep/down/prod.env"}, True),
    ("Read(*.env)", "Read", {"file_path": "/elsewhere/prod.env"}, False),
    ("Read(src/*.py)", "Read", {"file_path": "/work/src/a.py"}, True),
    ("Read(src/*.py)", "Read", {"file_path": "/work/src/pkg/a.py"}, False),
    ("Read(./secrets)", "Read", {"file_path": "/work/secrets/key"}, True),
    ("Read(./src/**)", "Grep", {"pattern": "x", "path": "/work/src/pkg"}, True),
    ("Read(./src/**)", "Glob", {"pattern": "/etc/*", "path": "/work/src"}, None),
    ("Read(./src/**)", "Read", {}, None),
    # domains
    ("WebFetch(domain:example.com)", "WebFetch", {"url": "https://example.com/a"}, True),
    ("WebFetch(domain:example.com)", "WebFetch", {"url": "https://EXAMPLE.com/a"}, True),
    ("WebFetch(domain:example.com)", "WebFetch", {"url": "https://evil.example.com/"}, False),
    ("WebFetch(domain:example.com)", "WebFetch", {"url": "https://example.com.evil/"}, False),
    ("WebFetch(domain:*.example.com)", "WebFetch", {"url": "https://a.example.com/"}, True),
    ("WebFetch(domain:example.com)", "WebFetch", {"url": 7}, None),
    ("WebFetch(example.com)", "WebFetch", {"url": "https://example.com/"}, None),
    # MCP servers and tools
    ("mcp__hive", "mcp__hive__send", {}, True),
    ("mcp__hive", "mcp__hivemind__send", {}, False),
    ("mcp__hive__send", "mcp__hive__send", {}, True),
    ("mcp__hive__send", "mcp__hive__recv", {}, False),
    # a specifier this code does not know: doubt
    ("Skill(deploy)", "Skill", {"skill": "deploy"}, None),
    ("Skill(deploy)", "Bash", {"command": "deploy"}, False),
]


@pytest.mark.parametrize(("rule", "tool", "tool_input", "expected"), MATCHES)
def test_rules_match_calls_the_way_claude_code_matches_them(
    rule: str, tool: str, tool_input: dict[str, Any], expected: bool | None
) -> None:
    assert matches(parse_rule(rule, "test"), tool, tool_input, HERE) is expected


COVERED: list[tuple[tuple[str, ...], str, bool]] = [
    (("Bash(git:*)",), "git status && git log", True),
    (("Bash(git:*)", "Bash(ls:*)"), "ls; git status", True),
    (("Bash(git:*)",), "git status && rm -rf x", False),
    (("Bash(echo:*)",), "echo done $(hostname)", False),  # nested: Claude Code asks too
    (("Bash(echo:*)",), "echo hi > /work/f", False),  # a redirect writes a file
    (("Bash(echo:*)",), "echo hi\nrm x", False),
    (("Bash(echo:*)",), "echo 'unclosed", False),
    (("Bash",), "echo done $(hostname) > /work/proof.txt", True),
    (("Bash",), "ls / | wc -l > /work/count.txt", True),
]


@pytest.mark.parametrize(("allow", "command", "expected"), COVERED)
def test_a_command_is_allowed_by_prefixes_only_when_every_part_is(
    allow: tuple[str, ...], command: str, expected: bool
) -> None:
    found = covered(rules(*allow), "Bash", {"command": command}, HERE)
    assert (found is not None) is expected


DECISIONS: list[tuple[ToolPolicy, str, dict[str, Any], str, str | None]] = [
    (ToolPolicy(rules("Bash"), (), rules("Bash(rm:*)")), "Bash", {"command": "rm x"}, "deny",
     "Bash(rm:*)"),
    (ToolPolicy(rules("Bash"), (), rules("Bash(rm:*)")), "Bash", {"command": "ls"}, "allow",
     "Bash"),
    (ToolPolicy(rules("Bash"), rules("Bash(git push:*)"), ()), "Bash",
     {"command": "git push"}, "ask", "Bash(git push:*)"),
    (ToolPolicy(rules("Bash"), rules("Bash"), rules("Bash")), "Bash", {"command": "ls"}, "deny",
     "Bash"),
    (ToolPolicy(rules("Read"), (), ()), "Bash", {"command": "ls"}, "none", None),
    (ToolPolicy((), (), ()), "Read", {"file_path": "/work/a"}, "none", None),
    (ToolPolicy(rules("Skill"), rules("Skill(deploy)"), ()), "Skill", {}, "ask",
     "Skill(deploy)"),
    (ToolPolicy(rules("Skill(deploy)"), (), ()), "Skill", {"skill": "deploy"}, "none", None),
]  # fmt: skip


@pytest.mark.parametrize(("policy", "tool", "tool_input", "verdict", "rule"), DECISIONS)
def test_deny_beats_ask_beats_allow_and_nothing_permits_nothing(
    policy: ToolPolicy, tool: str, tool_input: dict[str, Any], verdict: str, rule: str | None
) -> None:
    decision = decide(policy, tool, tool_input, HERE)
    assert decision.verdict == verdict
    assert (str(decision.rule) if decision.rule else None) == rule


# -- the core's answers ------------------------------------------------------------

ANSWERS: list[tuple[object, bool, tuple[str, ...]]] = [
    ({"decision": "allow", "approval": 4, "rule": None, "message": ""}, True, ()),
    ({"decision": "pending", "approval": 7, "rule": None, "message": "waits"}, False,
     ("approval #7", "approval_decided", "exactly the same input", "end your turn")),
    ({"decision": "deny", "approval": 7, "rule": None, "message": "not on prod"}, False,
     ("operator denied", "#7", "not on prod")),
    ({"decision": "deny", "approval": None, "rule": 3, "message": "no pushes"}, False,
     ("policy rule #3", "no pushes")),
    ({"decision": "pending", "approval": None, "rule": None, "message": ""}, False,
     ("no usable answer",)),
    ({"decision": "maybe"}, False, ("no usable answer",)),
    ("allow", False, ("no usable answer",)),
    (None, False, ("no usable answer",)),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "allowed", "told"), ANSWERS)
def test_each_answer_of_the_core_becomes_a_verdict_and_doubt_refuses(
    answer: object, allowed: bool, told: tuple[str, ...]
) -> None:
    verdict = from_core("Bash", answer)
    assert verdict.allow is allowed
    for text in told:
        assert text in verdict.message


class FakeCore:
    """The core's ``tool_use`` op, answering from a script and recording the calls."""

    def __init__(self, answer: object = None, error: Exception | None = None) -> None:
        self.answer = answer
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.hang = asyncio.Event()

    async def __call__(self, tool: str, tool_input: dict[str, Any]) -> object:
        self.calls.append((tool, tool_input))
        if self.error is not None:
            raise self.error
        if self.answer is None:
            await self.hang.wait()  # never set: a core that does not answer
        return self.answer


ASKING = ToolPolicy(rules("Read"), rules("Bash"), rules("Bash(rm:*)"))


async def test_only_ask_calls_reach_the_core_and_with_their_exact_input() -> None:
    core = FakeCore({"decision": "allow", "approval": 1, "rule": None, "message": ""})
    gate = Gate(ASKING, core, HERE)
    call = {"command": "echo hi", "description": "greet", "nested": {"b": [1, 2]}}
    allowed = await gate("Bash", call, None)
    assert isinstance(allowed, PermissionResultAllow) and allowed.updated_input == call
    denied = await gate("Bash", {"command": "rm x"}, None)
    assert isinstance(denied, PermissionResultDeny)
    assert denied.message == "denied by this agent's tool policy (rule Bash(rm:*))"
    assert isinstance(await gate("Read", {"file_path": "/work/a"}, None), PermissionResultAllow)
    nothing = await gate("WebFetch", {"url": "https://example.com"}, None)
    assert isinstance(nothing, PermissionResultDeny) and nothing.message == NOT_PERMITTED
    assert core.calls == [("Bash", call)]


async def test_a_pending_call_tells_the_model_to_end_its_turn_and_retry_identically() -> None:
    core = FakeCore({"decision": "pending", "approval": 12, "rule": None, "message": ""})
    result = await Gate(ASKING, core, HERE)("Bash", {"command": "make"}, None)
    assert isinstance(result, PermissionResultDeny) and not result.interrupt
    assert "#12" in result.message and "exactly the same input" in result.message


@pytest.mark.parametrize(
    "error", [HiveError("cannot reach hive-c0re"), OSError("gone"), RuntimeError("a bug")]
)
async def test_a_core_that_fails_or_a_bug_refuses_the_call(error: Exception) -> None:
    result = await Gate(ASKING, FakeCore(error=error), HERE)("Bash", {"command": "make"}, None)
    assert isinstance(result, PermissionResultDeny) and "not" in result.message


async def test_a_silent_core_refuses_the_call_once_the_wait_is_over() -> None:
    core = FakeCore(None)
    gate = Gate(ASKING, core, HERE, ask_timeout=0.05)
    result = await gate("Bash", {"command": "make"}, None)
    assert isinstance(result, PermissionResultDeny) and "could not be asked" in result.message


async def test_an_unreachable_core_socket_refuses_the_call(tmp_path: Path) -> None:
    gate = Gate(ASKING, core_ask(tmp_path / "no.sock"), HERE)
    result = await gate("Bash", {"command": "make"}, None)
    assert isinstance(result, PermissionResultDeny)
    assert "could not be asked" in result.message and "cannot reach" in result.message


async def test_an_input_too_big_to_show_is_refused_without_asking() -> None:
    core = FakeCore({"decision": "allow", "approval": 1, "rule": None, "message": ""})
    result = await Gate(ASKING, core, HERE)("Bash", {"command": "x" * MAX_INPUT}, None)
    assert isinstance(result, PermissionResultDeny) and "KiB" in result.message
    assert core.calls == []


# -- what the CLI gets and what the model is told ------------------------------------


def test_the_cli_gets_the_rules_and_only_the_built_ins_a_rule_names() -> None:
    policy = ToolPolicy(rules("Bash(git:*)", "Edit(/docs/**)"), rules("WebFetch"), rules("Read"))
    options = permission_options(policy)
    assert set(options["tools"]) == {
        "Bash", "Edit", "Write", "NotebookEdit", "WebFetch", "ToolSearch",
    }  # fmt: skip
    assert json.loads(options["settings"]) == {
        "permissions": {
            "allow": ["Bash(git:*)", "Edit(/docs/**)"],
            "ask": ["WebFetch"],
            "deny": ["Read"],
        }
    }
    everything = permission_options(defaults(isolated=True, manager=False))
    assert everything["tools"] == list(BUILTINS)


def test_the_system_prompt_names_the_workspace_and_each_list_of_tools() -> None:
    policy = ToolPolicy(rules("Read", "Grep"), rules("Bash"), rules("WebFetch"))
    text = system_prompt("alice", "reviews code", tools=policy)
    assert text.startswith("You are alice,")
    assert "/work" in text and "/state" in text
    assert "freely: Read, Grep." in text
    assert "wait for the operator each time: Bash." in text
    assert "may not use: WebFetch" in text
    assert text.endswith("Your role:\nreviews code")
    manager = system_prompt(
        "hm1nd", None, manager=True, tools=defaults(isolated=True, manager=True)
    )
    assert manager.startswith("You are hm1nd,") and "Bash(git:*)" in manager
