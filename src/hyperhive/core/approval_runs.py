"""Carrying out an approved spawn or config change, on the host that must.

With one core, the core that decides carries it out in the same call, as it always has.
When several hosts' cores share the store (core/hosts/), the proposed config repos live on
hm1nd's host and an agent's container and applied repo on the agent's host, so a config
change takes up to three cores:

* the deciding core decides (compare-and-set from pending) and, if it is not hm1nd's
  host, signals ``hive_approved``;
* hm1nd's host reads the pinned tree from its proposals, with the checks an apply makes,
  and applies it itself if the agent is its own; else it records the files
  (core/applied_configs.py) and signals ``hive_config``;
* the agent's host writes them into its applied repo, applies them as
  :meth:`~hyperhive.core.lifecycle.Lifecycle.apply_commit` does, and finishes the
  approval (approved → applied or failed, compare-and-set: one finisher wins).

A signal is only a hint: each step reads the store, and every resync looks again for what
no signal brought. The requester is told through the broker, which routes to its host.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hyperhive.core.applied_configs import AppliedConfigs
from hyperhive.core.approval_queue import ApprovalQueue
from hyperhive.core.approvals import Applied, Approval, Failed, IllegalTransition, transition
from hyperhive.core.audit import AuditLog
from hyperhive.core.config_repo import ConfigRepos
from hyperhive.core.db import Database
from hyperhive.core.db.signals import APPROVED, CONFIGS, Signals
from hyperhive.core.git import ConfigRepoError
from hyperhive.core.lifecycle import ContainersDisabled, Lifecycle
from hyperhive.core.notifier import Notifier
from hyperhive.core.proposal import Pin
from hyperhive.core.proposal_mirrors import ProposalMirrors
from hyperhive.core.registry import Registry
from hyperhive.core.spawn_placement import SpawnPlacement
from hyperhive.errors import HiveError
from hyperhive.names import MANAGER

log = logging.getLogger(__name__)
Outcome = dict[str, Any]


def pin_of(approval: Approval) -> Pin:
    if approval.sha is None or approval.tree is None or approval.digest is None:
        raise ConfigRepoError(
            f"approval #{approval.id} predates verified staging: deny it and ask again"
        )
    return Pin(approval.sha, approval.tree, approval.digest)


def outcome_of(approval: Approval) -> Outcome:
    detail: Outcome = {"id": approval.id, "kind": approval.kind}
    if approval.kind == "apply_commit":
        detail.update(sha=approval.sha, tree=approval.tree)
    if approval.error is not None:
        detail["error"] = approval.error
    return detail


class ApprovalRuns:
    def __init__(
        self,
        conn: Database,
        queue: ApprovalQueue,
        registry: Registry,
        notifier: Notifier,
        signals: Signals,
        placement: SpawnPlacement,
        *,
        repos: ConfigRepos | None,
        lifecycle: Lifecycle | None,
        audit: AuditLog | None,
    ) -> None:
        self._queue = queue
        self._registry = registry
        self._notifier = notifier
        self._signals = signals
        self.placement = placement
        self._repos = repos
        self._lifecycle = lifecycle
        self._audit = audit
        self.configs = AppliedConfigs(conn)
        # hm1nd proposes to other hosts' agents in repos on its own host.
        self.mirrors = (
            ProposalMirrors(conn, registry, repos, signals) if repos is not None else None
        )
        self._running: set[int] = set()  # approvals being carried out here, by any pass
        self._tasks: set[asyncio.Task[object]] = set()
        signals.listen(APPROVED, self._signalled)
        signals.listen(CONFIGS, self._signalled)
        signals.on_resync(self.resync)

    # -- deciding core ------------------------------------------------------------

    async def execute(self, approved: Approval) -> Approval:
        """Carry out ``approved`` if this host is the one to; else hand it on (its state
        stays ``approved`` until the host that runs it finishes it)."""
        if approved.kind == "spawn" and self.placement.is_here(approved.id):
            return await self._run(approved, lambda: self._spawn(approved))
        if approved.kind == "spawn" or not self._manager_here():
            self._signals.notify(APPROVED, str(approved.id))
            return approved
        return await self._from_proposals(approved)

    def _manager_here(self) -> bool:
        # No hm1nd at all (a hive that never made one): whoever decides carries it out.
        return MANAGER not in self._registry or self._registry.is_local(MANAGER)

    def _here(self, agent: str) -> bool:
        # An agent gone since the request fails here, as it always did.
        return agent not in self._registry or self._registry.is_local(agent)

    async def _spawn(self, approved: Approval) -> Outcome:
        await self._containers().spawn(approved.agent, approved.config)
        return {}

    # -- hm1nd's host ---------------------------------------------------------------

    async def _from_proposals(self, approved: Approval) -> Approval:
        if self._here(approved.agent):
            return await self._run(approved, lambda: self._apply_local(approved))
        self._running.add(approved.id)
        try:
            lifecycle, repos = self._containers(), self._proposals()
            pin = pin_of(approved)
            files = await repos.pinned_files(approved.agent, pin, approved.id, lifecycle.judge)
            self.configs.record(approved.id, approved.agent, pin, files)
        except HiveError as exc:
            log.warning("approval %d failed: %s", approved.id, exc.message)
            return self._finish(approved, Failed(exc.message), {})
        finally:
            self._running.discard(approved.id)
        self._signals.notify(CONFIGS, f"{approved.id} {approved.agent}")
        return approved

    async def _apply_local(self, approved: Approval) -> Outcome:
        applied = await self._containers().apply_commit(
            approved.agent, pin_of(approved), approved.id
        )
        return {"applied_sha": applied}

    async def _advance_mirror(self, approval: Approval) -> None:
        """The agent's host applied it: the base the next proposal is diffed against here
        moves with it (its staged tree is kept here since the request)."""
        repos = self._repos
        if repos is None or approval.tree is None:
            return
        try:
            pin = pin_of(approval)
            if await repos.applied_tree(approval.agent) != pin.tree:
                await repos.apply(approval.agent, pin, approval.id)
        except HiveError as exc:
            log.warning("proposals of %s not moved to #%d: %s", approval.agent, approval.id, exc)

    # -- the agent's host -------------------------------------------------------------

    async def _apply_recorded(self, approval_id: int) -> None:
        approved = self._queue.get(approval_id)
        if approved.state == "approved" and approval_id not in self._running:
            await self._run(approved, lambda: self._apply_sent(approved))

    async def _apply_sent(self, approved: Approval) -> Outcome:
        recorded = self.configs.get(approved.id)
        if recorded is None:  # the row is gone with its approval: nothing to apply
            raise ConfigRepoError(f"no config was recorded for approval #{approved.id}")
        lifecycle = self._containers()
        await lifecycle.repos.import_pinned(recorded.agent, recorded.pin, recorded.files)
        applied = await lifecycle.apply_commit(recorded.agent, recorded.pin, approved.id)
        return {"applied_sha": applied}

    # -- every step's end -----------------------------------------------------------

    async def _run(self, approved: Approval, action: Callable[[], Awaitable[Outcome]]) -> Approval:
        self._running.add(approved.id)
        try:
            outcome = await action()
        except HiveError as exc:
            log.warning("approval %d failed: %s", approved.id, exc.message)
            return self._finish(approved, Failed(exc.message), {})
        else:
            return self._finish(approved, Applied(), outcome)
        finally:
            self._running.discard(approved.id)

    def _finish(self, approved: Approval, event: Applied | Failed, outcome: Outcome) -> Approval:
        done = transition(approved, event, time.time())
        try:
            self._queue.save(done, previous=approved.state)
        except IllegalTransition:
            return self._queue.get(approved.id)  # another pass or host finished it first
        if self._audit is not None:
            detail = outcome | outcome_of(done)
            self._audit.append("core", "core", f"approval_{done.state}", done.agent, detail)
        self._notifier.tell(done.requester, "approval_decided", done.to_wire())
        self._notifier.publish({"type": "approval_decided", "approval": done.to_wire()})
        if done.kind == "apply_commit" and not self._manager_here():
            self._signals.notify(CONFIGS, f"{done.id} {done.agent}")  # its proposals move
        return done

    def _containers(self) -> Lifecycle:
        if self._lifecycle is None:
            raise ContainersDisabled("this hive-c0re runs without a container backend")
        return self._lifecycle

    def _proposals(self) -> ConfigRepos:
        if self._repos is None:
            raise ContainersDisabled("this hive-c0re runs without a container backend")
        return self._repos

    # -- signals and resyncs ----------------------------------------------------------

    def _signalled(self, payload: str) -> None:
        head = payload.partition(" ")[0]
        if head.isdigit():
            self._spawn_task(self._look_at(int(head)))

    async def _look_at(self, approval_id: int) -> None:
        """What this host has to do about one approval, as the store has it now."""
        approval = self._queue.get(approval_id)
        if approval.id in self._running or approval.state != "approved":
            if approval.state == "applied" and approval.kind == "apply_commit":
                await self._mirror_applied(approval)
            return
        if approval.kind == "spawn":
            if self.placement.host_of(approval.id) == self.placement.here:
                await self._run(approval, lambda: self._spawn(approval))
            return
        recorded = self.configs.get(approval.id) is not None
        if recorded and self._registry.is_local(approval.agent):
            await self._apply_recorded(approval.id)
        elif not recorded and self._manager_here():
            await self._from_proposals(approval)

    async def _mirror_applied(self, approval: Approval) -> None:
        if self._manager_here() and not self._here(approval.agent):
            await self._advance_mirror(approval)

    def resync(self) -> None:
        """Whatever no signal brought: configs waiting for this host's agents, spawns
        placed here, and (on hm1nd's host) approved changes nobody has read from the
        proposals yet."""
        for approval_id, agent in self.configs.waiting():
            if self._registry.is_local(agent) and approval_id not in self._running:
                self._spawn_task(self._apply_recorded(approval_id))
        for approval_id in self.placement.waiting_here():
            if approval_id not in self._running:
                self._spawn_task(self._look_at(approval_id))
        if self._manager_here() and self._repos is not None:
            for approval_id in self.configs.unrecorded():
                if approval_id not in self._running:
                    self._spawn_task(self._look_at(approval_id))

    def _spawn_task(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(work: Awaitable[None]) -> None:
        try:
            await work
        except HiveError as exc:  # a background pass: the next resync tries again
            log.warning("carrying out an approval: %s", exc.message)
