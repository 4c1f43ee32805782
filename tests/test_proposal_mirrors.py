"""hm1nd's mirrors of other hosts' agents (core/proposal_mirrors.py) on a real PostgreSQL
database, two cores' registries on their own connections and real ``NOTIFY`` between them:
a mirror is made when beta's agent is heard of and goes when its removal is, and a restart
that missed the removal (or a respawn under the same name) drops it at its resync, never
touching what this host's own agents left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hyperhive.core.config_repo import ConfigRepos
from hyperhive.core.db import Database, open_store
from hyperhive.core.db.pg_signals import PostgresSignals
from hyperhive.core.db.signals import LocalSignals
from hyperhive.core.proposal_mirrors import MARK, ProposalMirrors
from hyperhive.core.registry import AgentRecord, Registry
from hyperhive.names import MANAGER
from support.postgres import postgres_url

__all__ = ["postgres_url"]  # the fixture

WAIT = 15.0  # a bound: a signal and a git init take a fraction of one


@dataclass
class Rig:
    url: str
    alpha_db: Database
    beta_db: Database
    signals: PostgresSignals
    alpha: Registry
    beta: Registry
    repos: ConfigRepos
    mirrors: ProposalMirrors
    heard: asyncio.Queue[tuple[str, AgentRecord | None]]

    async def next_heard(self) -> tuple[str, AgentRecord | None]:
        """The next change alpha heard of, once the mirrors' work on it is done."""
        async with asyncio.timeout(WAIT):
            change = await self.heard.get()
            await self.mirrors.idle()
        return change


@pytest.fixture
async def rig(postgres_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    alpha_db, beta_db = open_store(postgres_url), open_store(postgres_url)
    signals = PostgresSignals(postgres_url, alpha_db)
    alpha = Registry(alpha_db, "alpha", signals)
    beta = Registry(beta_db, "beta", PostgresSignals(postgres_url, beta_db))
    repos = ConfigRepos(tmp_path / "alpha")
    mirrors = ProposalMirrors(alpha_db, alpha, repos, signals)
    heard: asyncio.Queue[tuple[str, AgentRecord | None]] = asyncio.Queue()
    alpha.watch(lambda name, record: heard.put_nowait((name, record)))  # after the mirrors
    alpha.add(MANAGER)
    await signals.start()
    try:
        yield Rig(postgres_url, alpha_db, beta_db, signals, alpha, beta, repos, mirrors, heard)
    finally:
        await signals.close()
        await mirrors.idle()
        alpha_db.close()
        beta_db.close()


def has_repos(repos: ConfigRepos, name: str) -> bool:
    return repos.applied_dir(name).exists() or repos.proposed_dir(name).parent.exists()


async def test_a_mirror_is_made_when_beta_adds_its_agent_and_removed_when_beta_removes_it(
    rig: Rig,
) -> None:
    bob = rig.beta.add("bob")
    assert await rig.next_heard() == ("bob", bob)
    mark = rig.repos.applied_dir("bob") / ".git" / MARK
    assert float(mark.read_text()) == bob.created_at
    assert (rig.repos.proposed_dir("bob") / "agent.toml").is_file()
    rig.beta.remove("bob")
    assert await rig.next_heard() == ("bob", None)
    assert not has_repos(rig.repos, "bob")
    # Spawned again on beta: a mirror of the new bob.
    again = rig.beta.add("bob")
    assert await rig.next_heard() == ("bob", again)
    assert float(mark.read_text()) == again.created_at


async def restarted_alpha(rig: Rig) -> tuple[Registry, ProposalMirrors]:
    """alpha's core started again (its signals missed everything meanwhile), resynced."""
    registry = Registry(rig.alpha_db, "alpha", LocalSignals())
    mirrors = ProposalMirrors(rig.alpha_db, registry, rig.repos, LocalSignals())
    mirrors.resync()  # what its listener does on connecting
    async with asyncio.timeout(WAIT):
        await mirrors.idle()
    return registry, mirrors


async def test_a_removal_missed_while_alpha_was_down_drops_the_mirror_at_its_resync(
    rig: Rig,
) -> None:
    rig.beta.add("bob")
    rig.beta.add("carol")
    await rig.next_heard()
    await rig.next_heard()
    await rig.signals.close()  # alpha stops listening: beta's next changes go unheard
    rig.beta.remove("bob")
    rig.beta.remove("carol")
    carol = rig.beta.add("carol", ["hm1nd"])  # a new carol, under the same name
    _, mirrors = await restarted_alpha(rig)
    assert not has_repos(rig.repos, "bob")
    mark = rig.repos.applied_dir("carol") / ".git" / MARK
    assert float(mark.read_text()) == carol.created_at
    assert mirrors.missing() == [] and mirrors.stale() == []


async def test_what_alphas_own_agent_left_is_never_taken_for_a_mirror(rig: Rig) -> None:
    # destroy without --purge keeps an agent's repos; its name is then free.
    await rig.repos.init_agent("dave", 'role = "kept"\n')
    rig.alpha.add("dave")
    rig.alpha.remove("dave")
    _, mirrors = await restarted_alpha(rig)
    assert mirrors.stale() == []
    assert rig.repos.read_applied("dave", "agent.toml") == 'role = "kept"\n'
    # Not even when beta later runs a dave of its own and removes it.
    rig.beta.add("dave")
    await rig.next_heard()
    rig.beta.remove("dave")
    await rig.next_heard()
    assert rig.repos.read_applied("dave", "agent.toml") == 'role = "kept"\n'
