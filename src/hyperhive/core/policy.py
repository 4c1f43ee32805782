"""The operator's approval policies as pure code: which rule, if any, decides a request.

:func:`decide` walks the rules of ``hive.toml`` (``settings.current().policies``) in order
and the first that matches decides; no rule matching means the operator decides, as
always. A deny rule is a rule whose decision is ``deny``: order matters, so put the
refusals first. A rule matches a request when its ``kind`` is the request's and every
condition it gives holds:

- ``agent``, ``requester``: :func:`fnmatch.fnmatchcase` patterns on the agent's name and
  on who asked (case-sensitive, nothing platform-dependent).
- ``fields`` (apply_commit): the set of changed ``agent.toml`` fields is not empty, every
  changed field is covered by one listed name, and no file other than ``agent.toml``
  changed. A name covers itself and everything below it: ``sandbox`` covers
  ``sandbox.network``; ``sandbox.network`` covers only itself.
- ``max_agents`` (spawn): fewer agents exist now (the manager counts) than this.
- ``tool`` (tool_use): an fnmatch pattern on the tool's name; ``input``: a regular
  expression that must match the whole canonical JSON of the tool's input
  (:func:`re.fullmatch`), so ``{"command":"ls"}`` is not matched by a pattern for
  ``ls`` alone.

A condition about facts the request does not carry (``fields`` on a spawn, say) never
holds, and neither does a regular expression that does not compile: a rule that cannot be
read approves nothing. The settings file refuses such rules at load; this is the second
line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from hyperhive.settings import PolicyDecision, PolicyKind, PolicyRule

POLICY_PREFIX = "policy:"


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """The facts of one request a rule may look at."""

    kind: PolicyKind
    agent: str
    requester: str
    # apply_commit: the changed agent.toml fields (dotted), and whether any other file did.
    changed: frozenset[str] | None = None
    other_files: bool = False
    # spawn: how many agents exist now.
    agents: int | None = None
    # tool_use: the tool's name and the canonical JSON of its input.
    tool: str | None = None
    input: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    rule: PolicyRule

    @property
    def decision(self) -> PolicyDecision:
        return self.rule.decision

    @property
    def decided_by(self) -> str:
        """What the approval records as its decider: ``policy:<rule name>``."""
        return f"{POLICY_PREFIX}{self.rule.name}"


def decide(rules: Sequence[PolicyRule], request: PolicyRequest) -> Verdict | None:
    """The verdict of the first rule that matches ``request``; None: the operator decides."""
    for rule in rules:
        if matches(rule, request):
            return Verdict(rule)
    return None


def matches(rule: PolicyRule, request: PolicyRequest) -> bool:
    if rule.kind != request.kind:
        return False
    if rule.agent is not None and not fnmatchcase(request.agent, rule.agent):
        return False
    if rule.requester is not None and not fnmatchcase(request.requester, rule.requester):
        return False
    if rule.fields is not None and not _fields_hold(rule.fields, request):
        return False
    if rule.max_agents is not None and (
        request.agents is None or request.agents >= rule.max_agents
    ):
        return False
    if rule.tool is not None and (request.tool is None or not fnmatchcase(request.tool, rule.tool)):
        return False
    return rule.input is None or _input_holds(rule.input, request.input)


def _fields_hold(allowed: frozenset[str], request: PolicyRequest) -> bool:
    changed = request.changed
    if not changed or request.other_files:
        return False
    return all(covered(field, allowed) for field in changed)


def covered(field: str, allowed: frozenset[str]) -> bool:
    """Whether ``field`` is one of ``allowed`` or lies below one of them."""
    parts = field.split(".")
    return any(".".join(parts[:n]) in allowed for n in range(1, len(parts) + 1))


def _input_holds(pattern: str, given: str | None) -> bool:
    if given is None:
        return False
    try:
        return re.fullmatch(pattern, given) is not None
    except re.error:
        return False
