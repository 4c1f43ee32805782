"""The dashboard's reads of agents' own state: fresh on a quiet hive, never a wait for 200
history scans when every agent has just finished a turn (web/agent_states.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hyperhive.agent.history import History
from hyperhive.agent.layout import MODEL_FILE, history_db
from hyperhive.web.agent_states import SCANS_PER_LISTING, AgentStates, SavedModels

WAIT = 30.0


def _turn(state_dir: Path, cost: float) -> None:
    history = History(history_db(state_dir))
    try:
        history.publish("turn_end", {"ok": True, "cost_usd": cost, "input_tokens": 1})
    finally:
        history.close()


def _dirs(tmp_path: Path, count: int) -> dict[str, Path]:
    dirs = {f"a{i}": tmp_path / f"a{i}" for i in range(count)}
    for state_dir in dirs.values():
        state_dir.mkdir()
    return dirs


async def test_a_quiet_hive_gets_the_turns_just_ended(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path, 3)
    states = AgentStates()
    assert [s for _, s in await states.of(list(dirs), dirs.__getitem__)] == [None] * 3
    _turn(dirs["a1"], 0.5)
    found = await states.of(list(dirs), dirs.__getitem__)
    stats = found[1][1]
    assert stats is not None and stats.turns == 1 and stats.cost_usd == 0.5


async def test_a_listing_after_every_agent_changed_scans_a_few_and_the_rest_catch_up(
    tmp_path: Path,
) -> None:
    dirs = _dirs(tmp_path, 3 * SCANS_PER_LISTING)
    states = AgentStates()
    await states.of(list(dirs), dirs.__getitem__)
    await asyncio.wait_for(states.caught_up(), WAIT)
    for state_dir in dirs.values():
        _turn(state_dir, 1.0)
    found = await states.of(list(dirs), dirs.__getitem__)
    current = [s for _, s in found if s is not None and s.turns == 1]
    assert len(current) == SCANS_PER_LISTING  # the others as last read: none yet
    await asyncio.wait_for(states.caught_up(), WAIT)
    found = await states.of(list(dirs), dirs.__getitem__)
    assert all(s is not None and s.turns == 1 for _, s in found)


def test_a_saved_model_is_read_again_only_when_its_file_changed(tmp_path: Path) -> None:
    models = SavedModels()
    path = tmp_path / MODEL_FILE
    assert models.read(tmp_path) is None
    path.write_text("claude-opus-4\n")
    assert models.read(tmp_path) == "claude-opus-4"
    path.write_text("claude-sonnet-4-5\n")  # another size: a change the lstat sees
    assert models.read(tmp_path) == "claude-sonnet-4-5"
    path.unlink()
    path.symlink_to("/etc/hostname")  # the agent's file is untrusted: never followed
    assert models.read(tmp_path) is None
    path.unlink()
    assert models.read(tmp_path) is None
