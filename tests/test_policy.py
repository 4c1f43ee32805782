"""The approval policy rules, decided by table: which rule (if any) takes a request."""

from __future__ import annotations

import pytest

from hyperhive.core.policy import PolicyRequest, decide
from hyperhive.settings import PolicyRule

ROLE_MODEL = PolicyRule(
    "role-model", "apply_commit", "approve", fields=frozenset({"role", "model"})
)
SANDBOX = PolicyRule("sandbox-ok", "apply_commit", "approve", fields=frozenset({"sandbox"}))
NET = PolicyRule("net-only", "apply_commit", "approve", fields=frozenset({"sandbox.network"}))
SMALL_HIVE = PolicyRule("small-hive", "spawn", "approve", max_agents=3)
WORKERS = PolicyRule("workers", "spawn", "approve", agent="w-*")
NO_EVIL = PolicyRule("no-evil", "spawn", "deny", agent="evil*")
LS = PolicyRule("ls", "tool_use", "approve", tool="Bash", input=r'\{"command":"ls( -l)?"\}')
NO_RM = PolicyRule("no-rm", "tool_use", "deny", tool="Bash", input=r'.*"rm -rf.*')
READS = PolicyRule("reads", "tool_use", "approve", tool="Read", agent="alice")
MCP = PolicyRule("hive-tools", "tool_use", "approve", tool="mcp__hive__*")
MANAGER_ONLY = PolicyRule("mgr", "spawn", "approve", requester="hm1nd", max_agents=10)
BAD_RE = PolicyRule("bad-re", "tool_use", "approve", tool="Bash", input="(")
WRONG_KIND_FACT = PolicyRule("fields-on-spawn", "spawn", "approve", fields=frozenset({"role"}))
ANY_COMMIT = PolicyRule("any-commit", "apply_commit", "deny")


def commit(*changed: str, other: bool = False, agent: str = "alice") -> PolicyRequest:
    return PolicyRequest(
        "apply_commit", agent, "hm1nd", changed=frozenset(changed), other_files=other
    )


def spawn(agent: str, agents: int, requester: str = "hm1nd") -> PolicyRequest:
    return PolicyRequest("spawn", agent, requester, agents=agents)


def tool(name: str, given: str, agent: str = "alice") -> PolicyRequest:
    return PolicyRequest("tool_use", agent, agent, tool=name, input=given)


CASES = [
    # (rules, request, the rule that decides or None)
    ([ROLE_MODEL], commit("role"), "role-model"),
    ([ROLE_MODEL], commit("role", "model"), "role-model"),
    ([ROLE_MODEL], commit("model"), "role-model"),
    ([ROLE_MODEL], commit("role", "sandbox.network"), None),  # one field too many
    ([ROLE_MODEL], commit("role", other=True), None),  # agent.nix changed too
    ([ROLE_MODEL], commit(), None),  # nothing in agent.toml changed: nothing to approve
    ([ROLE_MODEL], commit("roles"), None),  # a near name is another field
    ([ROLE_MODEL], commit("role.x"), "role-model"),  # below a listed name
    ([SANDBOX], commit("sandbox.network", "sandbox.memory_mb"), "sandbox-ok"),
    ([NET], commit("sandbox.network"), "net-only"),
    ([NET], commit("sandbox.memory_mb"), None),  # a sibling is not covered
    ([NET], commit("sandbox"), None),  # the whole table is more than one field of it
    ([SMALL_HIVE], spawn("bob", 2), "small-hive"),
    ([SMALL_HIVE], spawn("bob", 3), None),  # fewer than three, not three
    ([SMALL_HIVE], PolicyRequest("spawn", "bob", "hm1nd"), None),  # count unknown
    ([WORKERS], spawn("w-1", 50), "workers"),
    ([WORKERS], spawn("w1", 50), None),
    ([WORKERS], spawn("W-1", 50), None),  # fnmatch here is case-sensitive
    ([NO_EVIL, WORKERS], spawn("evil", 1), "no-evil"),
    ([WORKERS, NO_EVIL], spawn("evilw", 1), "no-evil"),
    ([SMALL_HIVE, NO_EVIL], spawn("evil", 1), "small-hive"),  # the first match wins
    ([MANAGER_ONLY], spawn("bob", 1, requester="alice"), None),
    ([MANAGER_ONLY], spawn("bob", 1), "mgr"),
    ([LS], tool("Bash", '{"command":"ls"}'), "ls"),
    ([LS], tool("Bash", '{"command":"ls -l"}'), "ls"),
    ([LS], tool("Bash", '{"command":"ls; rm -rf /"}'), None),  # must match the whole input
    ([LS], tool("Bash", '{"command":"ls","timeout":1}'), None),
    ([LS], tool("BashX", '{"command":"ls"}'), None),
    ([NO_RM, LS], tool("Bash", '{"command":"rm -rf /"}'), "no-rm"),
    ([READS], tool("Read", '{"file_path":"/x"}'), "reads"),
    ([READS], tool("Read", '{"file_path":"/x"}', agent="bob"), None),
    ([MCP], tool("mcp__hive__send", "{}"), "hive-tools"),
    ([MCP], tool("mcp__other__send", "{}"), None),
    ([BAD_RE], tool("Bash", "{}"), None),  # a pattern that does not compile approves nothing
    ([WRONG_KIND_FACT], spawn("bob", 1), None),  # a condition on facts it lacks never holds
    ([ROLE_MODEL, LS, SMALL_HIVE], tool("Bash", '{"command":"ls"}'), "ls"),  # kinds apart
    ([ANY_COMMIT], commit("role", other=True), "any-commit"),
    ([ANY_COMMIT], spawn("bob", 0), None),
    ([], commit("role"), None),
]


@pytest.mark.parametrize(("rules", "request_", "decider"), CASES)
def test_the_first_matching_rule_decides_and_near_misses_do_not(
    rules: list[PolicyRule], request_: PolicyRequest, decider: str | None
) -> None:
    verdict = decide(rules, request_)
    assert (verdict.rule.name if verdict else None) == decider


def test_a_verdict_names_its_rule_as_the_decider_and_carries_its_decision() -> None:
    verdict = decide([NO_EVIL], spawn("evil", 1))
    assert verdict is not None
    assert verdict.decided_by == "policy:no-evil"
    assert verdict.decision == "deny"
