"""The human in the loop: approvals the manager requests and the operator
decides, tool uses agents ask for (:mod:`hyperhive.core.tool_approvals`), and
questions the manager asks and the operator answers.

Every decision and answer reaches the requester's inbox as a core event
(``approval_decided``, ``operator_answered``) and the bus, so the dashboard
and ``hive tail`` see it too.

A new approval is first put to the operator's policy rules (:mod:`hyperhive.core.policy`,
read from the live settings at that moment); a rule that matches decides it at once, as
``policy:<rule>``, through the same steps as the operator's click. Every request, decision
and outcome is appended to the audit log with who took it and through what.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hyperhive.core.agent_config import AgentConfig, parse_agent_toml
from hyperhive.core.approval_queue import ApprovalQueue
from hyperhive.core.approval_runs import ApprovalRuns
from hyperhive.core.approvals import Approval, Approve, Deny, transition
from hyperhive.core.audit import AuditLog
from hyperhive.core.binds import check_binds, forbidden_roots
from hyperhive.core.config_fields import changed_fields
from hyperhive.core.config_repo import ConfigRepos, Staged
from hyperhive.core.config_tree import AGENT_TOML
from hyperhive.core.db import Database
from hyperhive.core.db.signals import LocalSignals, Signals
from hyperhive.core.diffstat import diffstat
from hyperhive.core.git import ConfigRepoError
from hyperhive.core.hosts.table import HostTable
from hyperhive.core.lifecycle import ContainersDisabled, Lifecycle
from hyperhive.core.notifier import Notifier
from hyperhive.core.policy import PolicyRequest, Verdict, decide
from hyperhive.core.questions import Question, QuestionBook
from hyperhive.core.registry import Registry
from hyperhive.core.spawn_placement import SpawnPlacement
from hyperhive.core.tool_approvals import ToolAnswer, ToolApprovals, ToolRule, preview
from hyperhive.core.workspace_repo import check_host_repo
from hyperhive.errors import AlreadyExists
from hyperhive.names import MANAGER, validate_agent_name
from hyperhive.settings import LiveSettings

log = logging.getLogger(__name__)


class Governance:
    def __init__(
        self,
        conn: Database,
        registry: Registry,
        notifier: Notifier,
        *,
        state_dir: Path,
        run_dir: Path,
        repos: ConfigRepos | None,
        lifecycle: Lifecycle | None,
        settings: LiveSettings | None = None,
        audit: AuditLog | None = None,
        signals: Signals | None = None,
        hosts: HostTable | None = None,
    ) -> None:
        """``state_dir``, ``run_dir``: the hive's own, which no bind may reach;
        ``repos`` and ``lifecycle`` are None without a container backend; ``settings``
        hold the policy rules (none: the operator decides everything); ``signals`` and
        ``hosts``: the other hosts' cores sharing the store (core/approval_runs.py)."""
        self._settings = settings if settings is not None else LiveSettings()
        self._audit = audit
        self._registry = registry
        self._notifier = notifier
        self._hive_dirs = (state_dir, run_dir)
        self._repos = repos
        self._lifecycle = lifecycle
        self.queue = ApprovalQueue(conn)
        self.book = QuestionBook(conn)
        self.tools = ToolApprovals(conn, host=registry.host)
        self.runs = ApprovalRuns(
            conn, self.queue, registry, notifier, signals or LocalSignals(),
            SpawnPlacement(conn, registry.host, hosts),
            repos=repos, lifecycle=lifecycle, audit=audit,
        )  # fmt: skip

    @property
    def _containers(self) -> Lifecycle:
        if self._lifecycle is None:
            raise ContainersDisabled("this hive-c0re runs without a container backend")
        return self._lifecycle

    # -- approvals --------------------------------------------------------------

    async def request_spawn(
        self, requester: str, name: object, reason: str, config: str | None, host: object = None
    ) -> Approval:
        """``host``: the host to spawn on (core/spawn_placement.py); None: the roomiest."""
        name = validate_agent_name(name)
        if name in self._registry:
            raise AlreadyExists(f"agent {name!r} already exists")
        if config is not None:
            # A bad config is refused now, not at approval.
            self._check_binds(parse_agent_toml(config))
        placed = self.runs.placement.choose(host)
        # The host goes in with the row: a spawn approval never exists without it.
        approval = self.queue.request_spawn(name, requester, reason, config, placed)
        self._requested(approval)
        count = len(self._registry.all())
        verdict = self._verdict(PolicyRequest("spawn", name, requester, agents=count))
        self._publish("approval_requested", approval, **self._auto(verdict))
        return approval if verdict is None else await self._decide(approval, verdict)

    async def request_apply_commit(
        self, requester: str, name: str, sha: str, reason: str
    ) -> Approval:
        agent = self._registry.get(name)
        if self._repos is None:
            raise ContainersDisabled("this hive-c0re runs without a container backend")
        staged = await self._repos.stage(name, sha)
        self._check_binds(parse_agent_toml(staged.agent_toml))
        approval = self.queue.request_apply_commit(name, requester, reason, staged, agent.host)
        self._requested(approval)
        facts, stat = self._commit_facts(self._repos, approval, staged)
        verdict = self._verdict(facts)
        self._publish("approval_requested", approval, diffstat=stat, **self._auto(verdict))
        return approval if verdict is None else await self._decide(approval, verdict)

    @staticmethod
    def _commit_facts(
        repos: ConfigRepos, approval: Approval, staged: Staged
    ) -> tuple[PolicyRequest, dict[str, Any]]:
        """What an ApplyCommit changes, for the rules, and its diffstat for people."""
        stat = diffstat(staged.diff)
        try:
            applied = repos.read_applied(approval.agent, AGENT_TOML)
        except ConfigRepoError:
            applied = None  # unreadable: every field counts as changed
        facts = PolicyRequest(
            "apply_commit",
            approval.agent,
            approval.requester,
            changed=changed_fields(applied, staged.agent_toml),
            # A diff cut short may hide a file: then some other file may have changed.
            other_files=not stat.complete or bool(stat.paths - {AGENT_TOML}),
        )
        return facts, stat.to_wire()

    def _verdict(self, request: PolicyRequest) -> Verdict | None:
        return decide(self._settings.current().policies, request)

    @staticmethod
    def _auto(verdict: Verdict | None) -> dict[str, Any]:
        return {} if verdict is None else {"auto": verdict.rule.name}

    async def _decide(self, approval: Approval, verdict: Verdict) -> Approval:
        """The rule's decision, taken as the operator's would be."""
        if verdict.decision == "approve":
            return await self.approve(approval.id, verdict.decided_by, via="policy")
        why = f"refused by the operator's policy rule {verdict.rule.name!r}"
        return await self.deny(approval.id, verdict.decided_by, why, via="policy")

    def _check_binds(self, agent: AgentConfig) -> None:
        forbidden = forbidden_roots(*self._hive_dirs)
        check_binds(agent.sandbox.ro_binds, forbidden)
        if agent.workspace.repo is not None:
            check_host_repo(agent.workspace, forbidden)  # a real repository, nowhere forbidden

    def approvals(self, limit: int) -> dict[str, Any]:
        return {
            "pending": [a.to_wire() for a in self.queue.pending()],
            # The history previews tool inputs: 500 whole ones could be 100 MiB.
            "decided": [
                preview(a.to_wire()) for a in self.queue.recent(limit) if a.state != "pending"
            ],
        }

    async def show(self, approval_id: int) -> dict[str, Any]:
        """One approval, with the config diff an ApplyCommit would make."""
        approval = self.queue.get(approval_id)
        wire: dict[str, Any] = approval.to_wire()
        if approval.kind == "apply_commit":
            # Computed once, when it was staged: what the operator reads is what applies.
            if approval.diff is not None:
                wire["diff"] = approval.diff
            else:
                wire["diff_error"] = "this request predates verified staging; ask for it again"
        return wire

    async def approve(
        self, approval_id: int, by: str, always: bool = False, *, via: str = "operator"
    ) -> Approval:
        """``via``: what the decider acted through (``cli``, ``dashboard``, ``policy``)."""
        pending = self.queue.get(approval_id)
        if pending.kind == "tool_use":
            return self._approve_tool_use(pending, by, always, via)
        approved = self._save(pending, transition(pending, Approve(by, always), time.time()))
        self._decided(approved, via)
        self._publish("approval_decided", approved)
        # Here, in this call, with one core; else by the hosts that hold what it needs.
        return await self.runs.execute(approved)

    def _approve_tool_use(
        self, pending: Approval, by: str, always: bool, via: str, *, tell: bool = True
    ) -> Approval:
        # Nothing to run here: the agent runs the tool when it calls again, woken by this.
        done, rule = self.tools.approve(pending, by, always)
        self._decided(done, via)
        if tell:
            self._tell_requester(done)
        self._publish("approval_decided", done)
        if rule is not None:
            self._record(by, via, "rule_added", done, {"rule": rule.id, "tool": rule.tool})
            self._notifier.publish({"type": "rule_added", "rule": rule.to_wire()})
        return done

    # -- tool uses ----------------------------------------------------------------

    def tool_use(self, agent: str, tool: object, given: object) -> ToolAnswer:
        since = self._registry.get(agent).created_at
        answer = self.tools.ask(agent, since, tool, given)
        if not answer.created or answer.approval is None:
            return answer
        approval = answer.approval
        self._requested(approval)
        facts = PolicyRequest("tool_use", agent, agent, tool=approval.tool, input=approval.input)
        verdict = self._verdict(facts)
        self._publish("approval_requested", approval, **self._auto(verdict))
        if verdict is None:
            return answer
        # The caller is waiting for this very answer: it is told now, not woken later.
        if verdict.decision == "approve":
            self._approve_tool_use(approval, verdict.decided_by, False, "policy", tell=False)
        else:
            why = f"refused by the operator's policy rule {verdict.rule.name!r}"
            self._deny(approval, verdict.decided_by, why, "policy", tell=False)
        return self.tools.ask(agent, since, tool, given)

    def tool_rules(self, agent: str | None, limit: int) -> list[ToolRule]:
        if agent is not None:
            agent = validate_agent_name(agent)
        return self.tools.rules(agent, limit)

    def revoke_rule(self, rule_id: int, by: str = "operator", via: str = "operator") -> ToolRule:
        revoked = self.tools.revoke(rule_id)
        detail = {"rule": revoked.id, "tool": revoked.tool}
        self._audit_append(by, via, "rule_revoked", revoked.agent, detail)
        self._notifier.publish({"type": "rule_revoked", "rule": revoked.to_wire()})
        return revoked

    async def deny(
        self, approval_id: int, by: str, reason: str, *, via: str = "operator"
    ) -> Approval:
        return self._deny(self.queue.get(approval_id), by, reason, via)

    def _deny(
        self, pending: Approval, by: str, reason: str, via: str, *, tell: bool = True
    ) -> Approval:
        denied = self._save(pending, transition(pending, Deny(by, reason), time.time()))
        self._decided(denied, via)
        if tell:
            self._tell_requester(denied)
        self._publish("approval_decided", denied)
        return denied

    def _save(self, before: Approval, after: Approval) -> Approval:
        self.queue.save(after, previous=before.state)
        return after

    def _tell_requester(self, approval: Approval) -> None:
        self._notifier.tell(approval.requester, "approval_decided", approval.to_wire())

    def _publish(self, kind: str, approval: Approval, **extra: Any) -> None:
        self._notifier.publish({"type": kind, "approval": approval.to_wire(), **extra})

    # -- the audit log -------------------------------------------------------------

    def _requested(self, approval: Approval) -> None:
        requester = approval.requester
        via = "manager" if requester == MANAGER else "agent"
        self._record(requester, via, "approval_requested", approval, _request(approval))

    def _decided(self, approval: Approval, via: str) -> None:
        verb = "approval_denied" if approval.state == "denied" else "approval_approved"
        detail: dict[str, Any] = {"id": approval.id, "kind": approval.kind}
        if approval.decision_reason is not None:
            detail["reason"] = approval.decision_reason
        if approval.always:
            detail["always"] = True
        self._record(approval.decided_by or "operator", via, verb, approval, detail)

    def _record(
        self, actor: str, via: str, action: str, approval: Approval, detail: dict[str, Any]
    ) -> None:
        self._audit_append(actor, via, action, approval.agent, detail)

    def _audit_append(
        self, actor: str, via: str, action: str, agent: str | None, detail: dict[str, Any]
    ) -> None:
        if self._audit is not None:
            self._audit.append(actor, via, action, agent, detail)

    # -- questions ---------------------------------------------------------------

    def ask(self, asker: str, question: object, options: list[str] | None, multi: bool) -> Question:
        asked = self.book.ask(asker, question, options, multi)
        via = "manager" if asker == MANAGER else "agent"
        detail = {"id": asked.id, "question": asked.question, "options": asked.options}
        self._audit_append(asker, via, "question_asked", asker, detail)
        self._notifier.publish({"type": "question_asked", "question": asked.to_wire()})
        return asked

    def questions(self, limit: int) -> dict[str, Any]:
        return {
            "pending": [q.to_wire() for q in self.book.pending()],
            "answered": [q.to_wire() for q in self.book.answered(limit)],
        }

    def answer(
        self, question_id: int, answer: object, by: str, *, via: str = "operator"
    ) -> Question:
        answered = self.book.answer(question_id, answer, by)
        detail = {"id": answered.id, "answer": answered.answer}
        self._audit_append(by, via, "question_answered", answered.asker, detail)
        told = self._notifier.tell(
            answered.asker,
            "operator_answered",
            {"question_id": answered.id, "question": answered.question, "answer": answered.answer},
        )
        if not told:
            log.info("question %d answered, but %s is gone", answered.id, answered.asker)
        self._notifier.publish({"type": "question_answered", "question": answered.to_wire()})
        return answered


def _request(approval: Approval) -> dict[str, Any]:
    """An approval request as the audit log keeps it (bounded there)."""
    detail: dict[str, Any] = {"id": approval.id, "kind": approval.kind, "reason": approval.reason}
    if approval.kind == "apply_commit":
        detail.update(sha=approval.sha, tree=approval.tree)
    elif approval.kind == "tool_use":
        detail.update(tool=approval.tool, input=approval.input)
    elif approval.config is not None:
        detail["config"] = approval.config
    return detail
