"""The human in the loop: approvals the manager requests and the operator
decides, tool uses agents ask for (:mod:`hyperhive.core.tool_approvals`), and
questions the manager asks and the operator answers.

Every decision and answer reaches the requester's inbox as a core event
(``approval_decided``, ``operator_answered``) and the bus, so the dashboard
and ``hive tail`` see it too.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from hyperhive.core.agent_config import AgentConfig, parse_agent_toml
from hyperhive.core.approval_queue import ApprovalQueue
from hyperhive.core.approvals import Applied, Approval, Approve, Deny, Failed, transition
from hyperhive.core.binds import check_binds, forbidden_roots
from hyperhive.core.config_repo import ConfigRepos
from hyperhive.core.git import ConfigRepoError
from hyperhive.core.lifecycle import ContainersDisabled, Lifecycle
from hyperhive.core.notifier import Notifier
from hyperhive.core.proposal import Pin
from hyperhive.core.questions import Question, QuestionBook
from hyperhive.core.registry import Registry
from hyperhive.core.tool_approvals import ToolAnswer, ToolApprovals, ToolRule, preview
from hyperhive.core.workspace_repo import check_host_repo
from hyperhive.errors import AlreadyExists, HiveError
from hyperhive.names import validate_agent_name

log = logging.getLogger(__name__)


def pin_of(approval: Approval) -> Pin:
    if approval.sha is None or approval.tree is None or approval.digest is None:
        raise ConfigRepoError(
            f"approval #{approval.id} predates verified staging: deny it and ask again"
        )
    return Pin(approval.sha, approval.tree, approval.digest)


class Governance:
    def __init__(
        self,
        conn: sqlite3.Connection,
        registry: Registry,
        notifier: Notifier,
        *,
        state_dir: Path,
        run_dir: Path,
        repos: ConfigRepos | None,
        lifecycle: Lifecycle | None,
    ) -> None:
        """``state_dir``, ``run_dir``: the hive's own, which no bind may reach;
        ``repos`` and ``lifecycle`` are None without a container backend."""
        self._registry = registry
        self._notifier = notifier
        self._hive_dirs = (state_dir, run_dir)
        self._repos = repos
        self._lifecycle = lifecycle
        self.queue = ApprovalQueue(conn)
        self.book = QuestionBook(conn)
        self.tools = ToolApprovals(conn)

    @property
    def _containers(self) -> Lifecycle:
        if self._lifecycle is None:
            raise ContainersDisabled("this hive-c0re runs without a container backend")
        return self._lifecycle

    # -- approvals --------------------------------------------------------------

    async def request_spawn(
        self, requester: str, name: object, reason: str, config: str | None
    ) -> Approval:
        name = validate_agent_name(name)
        if name in self._registry:
            raise AlreadyExists(f"agent {name!r} already exists")
        if config is not None:
            # A bad config is refused now, not at approval.
            self._check_binds(parse_agent_toml(config))
        approval = self.queue.request_spawn(name, requester, reason, config)
        self._publish("approval_requested", approval)
        return approval

    async def request_apply_commit(
        self, requester: str, name: str, sha: str, reason: str
    ) -> Approval:
        self._registry.get(name)
        if self._repos is None:
            raise ContainersDisabled("this hive-c0re runs without a container backend")
        staged = await self._repos.stage(name, sha)
        self._check_binds(parse_agent_toml(staged.agent_toml))
        approval = self.queue.request_apply_commit(name, requester, reason, staged)
        self._publish("approval_requested", approval)
        return approval

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

    async def approve(self, approval_id: int, by: str, always: bool = False) -> Approval:
        pending = self.queue.get(approval_id)
        if pending.kind == "tool_use":
            return self._approve_tool_use(pending, by, always)
        approved = self._save(pending, transition(pending, Approve(by, always), time.time()))
        self._publish("approval_decided", approved)
        try:
            if approved.kind == "spawn":
                await self._containers.spawn(approved.agent, approved.config)
            else:
                pin = pin_of(approved)
                await self._containers.apply_commit(approved.agent, pin, approved.id)
        except HiveError as exc:
            log.warning("approval %d failed: %s", approved.id, exc.message)
            done = self._save(approved, transition(approved, Failed(exc.message), time.time()))
        else:
            done = self._save(approved, transition(approved, Applied(), time.time()))
        self._tell_requester(done)
        self._publish("approval_decided", done)
        return done

    def _approve_tool_use(self, pending: Approval, by: str, always: bool) -> Approval:
        # Nothing to run here: the agent runs the tool when it calls again, woken by this.
        done, rule = self.tools.approve(pending, by, always)
        self._tell_requester(done)
        self._publish("approval_decided", done)
        if rule is not None:
            self._notifier.publish({"type": "rule_added", "rule": rule.to_wire()})
        return done

    # -- tool uses ----------------------------------------------------------------

    def tool_use(self, agent: str, tool: object, given: object) -> ToolAnswer:
        since = self._registry.get(agent).created_at
        answer = self.tools.ask(agent, since, tool, given)
        if answer.created and answer.approval is not None:
            self._publish("approval_requested", answer.approval)
        return answer

    def tool_rules(self, agent: str | None, limit: int) -> list[ToolRule]:
        if agent is not None:
            agent = validate_agent_name(agent)
        return self.tools.rules(agent, limit)

    def revoke_rule(self, rule_id: int) -> ToolRule:
        revoked = self.tools.revoke(rule_id)
        self._notifier.publish({"type": "rule_revoked", "rule": revoked.to_wire()})
        return revoked

    async def deny(self, approval_id: int, by: str, reason: str) -> Approval:
        pending = self.queue.get(approval_id)
        denied = self._save(pending, transition(pending, Deny(by, reason), time.time()))
        self._tell_requester(denied)
        self._publish("approval_decided", denied)
        return denied

    def _save(self, before: Approval, after: Approval) -> Approval:
        self.queue.save(after, previous=before.state)
        return after

    def _tell_requester(self, approval: Approval) -> None:
        self._notifier.tell(approval.requester, "approval_decided", approval.to_wire())

    def _publish(self, kind: str, approval: Approval) -> None:
        self._notifier.publish({"type": kind, "approval": approval.to_wire()})

    # -- questions ---------------------------------------------------------------

    def ask(self, asker: str, question: object, options: list[str] | None, multi: bool) -> Question:
        asked = self.book.ask(asker, question, options, multi)
        self._notifier.publish({"type": "question_asked", "question": asked.to_wire()})
        return asked

    def questions(self, limit: int) -> dict[str, Any]:
        return {
            "pending": [q.to_wire() for q in self.book.pending()],
            "answered": [q.to_wire() for q in self.book.answered(limit)],
        }

    def answer(self, question_id: int, answer: object, by: str) -> Question:
        answered = self.book.answer(question_id, answer, by)
        told = self._notifier.tell(
            answered.asker,
            "operator_answered",
            {"question_id": answered.id, "question": answered.question, "answer": answered.answer},
        )
        if not told:
            log.info("question %d answered, but %s is gone", answered.id, answered.asker)
        self._notifier.publish({"type": "question_answered", "question": answered.to_wire()})
        return answered
