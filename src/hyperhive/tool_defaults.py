"""The default tool policy of an agent, and the policy it really runs with.

Claude Code's built-in tools are those the bundled CLI (2.1.332) accepts in
``--tools``: its init message lists them. ``AskUserQuestion``,
``EnterPlanMode`` and ``ExitPlanMode`` are left out on purpose: they talk to
a human at a terminal, and a hive agent reaches its human through the hive
tools instead. On an isolating backend (bwrap, nixos) every built-in is
allowed: the container is the boundary. On ``process`` nothing isolates the
agent from the host, so only tools that change nothing outside the CLI's own
session are allowed and every other built-in waits for the operator. The
manager keeps a narrower default wherever it runs: it edits config repos and
commits them, nothing more. The hive's own tools (``mcp__hive__*``) are
always allowed; the harness grants them itself. Pure code.
"""

from __future__ import annotations

from typing import Any, Final

from hyperhive.tool_rules import Rule, ToolPolicy, parse_rule

BUILTINS: Final = (
    "Agent", "Bash", "CronCreate", "CronDelete", "CronList", "Edit", "EnterWorktree",
    "ExitWorktree", "Glob", "Grep", "ListAgents", "Monitor", "NotebookEdit", "Read",
    "ReportFindings", "ScheduleWakeup", "SendMessage", "Skill", "TaskCreate", "TaskGet",
    "TaskList", "TaskStop", "TaskUpdate", "ToolSearch", "WebFetch", "WebSearch", "Workflow",
    "Write",
)  # fmt: skip
# Reading files, and tools whose effect stays inside the CLI session (its task
# list, the loading of deferred tool schemas, the list of subagent types).
READ_ONLY: Final = (
    "Read", "Glob", "Grep", "ListAgents", "CronList", "TaskCreate", "TaskGet", "TaskList",
    "TaskUpdate", "ToolSearch",
)  # fmt: skip
# Always offered, whatever the policy: the hive tools' schemas are deferred
# behind it, and it only loads them.
INFRASTRUCTURE: Final = ("ToolSearch",)
MANAGER_ALLOW: Final = ("Read", "Edit", "Write", "Glob", "Grep", "Bash(git:*)")
HIVE_SERVER: Final = "mcp__hive"


def _rules(texts: tuple[str, ...]) -> tuple[Rule, ...]:
    return tuple(parse_rule(text, "default") for text in texts)


def defaults(*, isolated: bool, manager: bool) -> ToolPolicy:
    """The policy of an agent whose ``agent.toml`` sets no ``[tools]`` list."""
    if manager:
        return ToolPolicy(allow=_rules(MANAGER_ALLOW), ask=(), deny=())
    if isolated:
        return ToolPolicy(allow=_rules(BUILTINS), ask=(), deny=())
    asked = tuple(t for t in BUILTINS if t not in READ_ONLY)
    return ToolPolicy(allow=_rules(READ_ONLY), ask=_rules(asked), deny=())


def effective(configured: ToolPolicy, *, isolated: bool, manager: bool) -> ToolPolicy:
    """``configured`` with every list it leaves out taken from the defaults."""
    return configured.complete(defaults(isolated=isolated, manager=manager))


def shown(configured: ToolPolicy, *, isolated: bool, manager: bool) -> dict[str, Any]:
    """The effective policy for people: its lists, and which of them are the default."""
    return {
        **effective(configured, isolated=isolated, manager=manager).to_wire(),
        "default": {
            "allow": configured.allow is None,
            "ask": configured.ask is None,
            "deny": configured.deny is None,
        },
    }
