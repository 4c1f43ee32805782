"""Tool rules in Claude Code's permission-rule syntax, and an agent's tool policy.

A rule names a tool, optionally narrowed by a specifier: ``Bash``,
``Bash(git push:*)``, ``Read(./src/**)``, ``WebFetch(domain:example.com)``,
``mcp__hive__send``. The policy of an agent is three lists of rules: ``allow``
(used freely), ``ask`` (each use waits for the operator), ``deny`` (never).
This module only checks and holds rules; the harness matches them
(:mod:`hyperhive.agent.permissions`) and the core decides the defaults for an
agent's backend. Pure code: shared by the core, the harness and the web layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hyperhive.errors import BadConfig

MAX_RULES: Final = 64
MAX_RULE: Final = 512
# A built-in tool (Bash, Read, WebFetch, …) or an MCP server or tool.
TOOL_RE: Final = re.compile(
    r"[A-Z][A-Za-z0-9]{0,63}|mcp__[A-Za-z0-9_-]{1,64}(__[A-Za-z0-9_-]{1,64})?"
)
RULE_RE: Final = re.compile(r"(?P<tool>[^()]+)(\((?P<spec>.*)\))?")
LISTS: Final = ("allow", "ask", "deny")


class BadRule(BadConfig):
    pass


@dataclass(frozen=True, slots=True)
class Rule:
    tool: str
    specifier: str | None = None

    def __str__(self) -> str:
        return self.tool if self.specifier is None else f"{self.tool}({self.specifier})"


def parse_rule(text: object, where: str) -> Rule:
    """One rule, or :class:`BadRule` naming ``where`` (e.g. ``tools.ask[2]``)."""
    if not isinstance(text, str):
        raise BadRule(f'{where} must be a string such as "Bash(git:*)" (got {text!r:.60})')
    if not text or len(text) > MAX_RULE or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadRule(f"{where}: a rule is 1-{MAX_RULE} printable characters")
    found = RULE_RE.fullmatch(text)
    if found is None or not TOOL_RE.fullmatch(found["tool"]):
        raise BadRule(
            f"{where}: {text!r:.80} is not a rule: use Tool or Tool(specifier), "
            "e.g. Read, Bash(git push:*), WebFetch(domain:example.com), mcp__hive__send"
        )
    spec = found["spec"]
    if spec is not None and not spec.strip():
        raise BadRule(f"{where}: {text!r:.80} has an empty specifier")
    return Rule(found["tool"], spec)


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """An agent's rules; a list left out of ``agent.toml`` is None (the backend's default)."""

    allow: tuple[Rule, ...] | None = None
    ask: tuple[Rule, ...] | None = None
    deny: tuple[Rule, ...] | None = None

    def to_wire(self) -> dict[str, list[str] | None]:
        def shown(rules: tuple[Rule, ...] | None) -> list[str] | None:
            return None if rules is None else [str(r) for r in rules]

        return {"allow": shown(self.allow), "ask": shown(self.ask), "deny": shown(self.deny)}

    @classmethod
    def from_wire(cls, data: object) -> ToolPolicy:
        """The inverse of :meth:`to_wire` (as passed to a harness), checked as strictly."""
        if not isinstance(data, dict) or set(data) - set(LISTS):
            raise BadRule("a tool policy is an object with allow, ask and deny")
        return parse_tools(data, prefix="policy.")

    def complete(self, defaults: ToolPolicy) -> ToolPolicy:
        """This policy with every list it leaves out taken from ``defaults``."""
        return ToolPolicy(
            self.allow if self.allow is not None else defaults.allow or (),
            self.ask if self.ask is not None else defaults.ask or (),
            self.deny if self.deny is not None else defaults.deny or (),
        )


def parse_tools(table: dict[str, object], *, prefix: str = "tools.") -> ToolPolicy:
    """The ``[tools]`` table of ``agent.toml`` (unknown keys already refused)."""
    lists: dict[str, tuple[Rule, ...] | None] = {}
    for name in LISTS:
        value = table.get(name)
        if value is None:
            lists[name] = None
            continue
        if not isinstance(value, list):
            raise BadRule(f"agent.toml: {prefix}{name} must be a list of rules")
        if len(value) > MAX_RULES:
            raise BadRule(f"agent.toml: {prefix}{name} has more than {MAX_RULES} rules")
        rules: list[Rule] = []
        for i, text in enumerate(value):
            rule = parse_rule(text, f"agent.toml: {prefix}{name}[{i}]")
            if rule not in rules:
                rules.append(rule)
        lists[name] = tuple(rules)
    return ToolPolicy(lists["allow"], lists["ask"], lists["deny"])
