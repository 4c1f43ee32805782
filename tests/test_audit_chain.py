"""The audit log's hash chain: an untouched log verifies; editing, deleting or swapping any
entry in the database (with sqlite itself) makes verify fail and name the first bad one."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from hyperhive.core.audit import AuditLog
from hyperhive.core.audit_chain import GENESIS, AuditEntry, ChainWalker, Head, seal
from hyperhive.core.db import open_store


def make_log(tmp_path: Path, entries: int = 5) -> tuple[AuditLog, Path]:
    db = tmp_path / "hive.db"
    log = AuditLog(open_store(db), tmp_path / "audit.head", clock=iter(range(1000, 2000)).__next__)
    for n in range(1, entries + 1):
        log.append("operator", "cli", "approval_approved", "alice", {"id": n, "why": f"#{n}"})
    log.flush()  # as a core that closed leaves it
    return log, db


def tamper(db: Path, *statements: str) -> None:
    raw = sqlite3.connect(db, isolation_level=None)
    try:
        for sql in statements:
            raw.execute(sql)
    finally:
        raw.close()


async def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path)
    result = await log.verify()
    assert (result.ok, result.count, result.first_bad) == (True, 5, None)


async def test_an_edited_entry_makes_verify_fail_and_name_it(tmp_path: Path) -> None:
    log, db = make_log(tmp_path)
    tamper(db, """UPDATE audit_log SET detail = '{"id":3,"why":"nothing to see"}' WHERE id = 3""")
    result = await log.verify()
    assert (result.ok, result.first_bad) == (False, 3)
    assert "edited" in (result.reason or "")


async def test_an_edited_actor_is_found_too(tmp_path: Path) -> None:
    log, db = make_log(tmp_path)
    tamper(db, "UPDATE audit_log SET actor = 'policy:x' WHERE id = 2")
    assert (await log.verify()).first_bad == 2


async def test_an_entry_deleted_in_the_middle_names_the_one_after_it(tmp_path: Path) -> None:
    log, db = make_log(tmp_path)
    tamper(db, "DELETE FROM audit_log WHERE id = 3")
    result = await log.verify()
    assert (result.ok, result.first_bad) == (False, 4)
    assert "#3" in (result.reason or "")


async def test_two_swapped_entries_name_the_first_of_them(tmp_path: Path) -> None:
    log, db = make_log(tmp_path)
    cols = "at, actor, via, action, agent, detail, prev, hash"
    tamper(
        db,
        f"CREATE TEMP TABLE keep AS SELECT id, {cols} FROM audit_log WHERE id IN (2, 3)",
        "UPDATE audit_log SET (at, actor, via, action, agent, detail, prev, hash) = "
        f"(SELECT {cols} FROM keep WHERE keep.id = 5 - audit_log.id) WHERE id IN (2, 3)",
    )
    result = await log.verify()
    assert (result.ok, result.first_bad) == (False, 2)


async def test_deleting_the_last_entry_is_seen_through_the_head(tmp_path: Path) -> None:
    log, db = make_log(tmp_path)
    tamper(db, "DELETE FROM audit_log WHERE id = 5")
    result = await log.verify()
    assert (result.ok, result.first_bad) == (False, 5)
    assert "removed" in (result.reason or "")


async def test_a_removal_of_the_end_stays_visible_after_a_restart_and_more_entries(
    tmp_path: Path,
) -> None:
    _, db = make_log(tmp_path)
    tamper(db, "DELETE FROM audit_log WHERE id >= 4")
    again = AuditLog(open_store(db), tmp_path / "audit.head")
    assert (await again.verify()).first_bad == 4
    again.append("operator", "cli", "budget_set", None, {})
    # Written on from the head it kept: the gap is in the chain now, for good.
    result = await again.verify()
    assert (result.ok, result.first_bad) == (False, 6)


async def test_a_lost_head_is_itself_recorded_in_the_chain(tmp_path: Path) -> None:
    _, db = make_log(tmp_path)
    (tmp_path / "audit.head").unlink()
    again = AuditLog(open_store(db), tmp_path / "audit.head")
    assert again.entries(limit=1)[0].action == "audit_head_lost"
    assert (await again.verify()).ok


async def test_a_burst_of_entries_rewrites_the_head_file_once_not_per_entry(
    tmp_path: Path,
) -> None:
    log = AuditLog(open_store(tmp_path / "hive.db"), tmp_path / "audit.head")
    for n in range(200):  # 200 agents stopping at once
        log.append("core", "core", "agent_state", f"a{n}", {"state": "stopped"})
    # The first entry was written at once; the other 199 wait for one write at the end.
    first = Head.from_text((tmp_path / "audit.head").read_text())
    assert first is not None and first.count == 1
    log.flush()
    head = Head.from_text((tmp_path / "audit.head").read_text())
    assert head == log.head and head is not None and head.count == 200
    assert (await log.verify()).ok


async def test_a_head_left_behind_by_a_crash_is_caught_up_at_open_and_verifies(
    tmp_path: Path,
) -> None:
    log, db = make_log(tmp_path, 3)
    behind = (tmp_path / "audit.head").read_text()
    log.append("operator", "cli", "budget_set", None, {})  # its head write lost in a crash
    log.flush()
    (tmp_path / "audit.head").write_text(behind)
    again = AuditLog(open_store(db), tmp_path / "audit.head")
    assert again.head.count == 4
    caught_up = Head.from_text((tmp_path / "audit.head").read_text())
    assert caught_up is not None and caught_up.count == 4
    assert (await again.verify()).ok


def test_the_head_file_is_the_cores_alone(tmp_path: Path) -> None:
    make_log(tmp_path, 1)
    mode = stat.S_IMODE(os.stat(tmp_path / "audit.head").st_mode)
    assert mode == 0o600
    assert Head.from_text((tmp_path / "audit.head").read_text()) is not None


def test_entries_filter_by_agent_and_time_and_come_oldest_first(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path, 3)
    log.append("core", "core", "agent_state", "bob", {"state": "running"})
    assert [e.id for e in log.entries(agent="bob")] == [4]
    assert [e.id for e in log.entries(since=1001)] == [2, 3, 4]
    assert [e.id for e in log.entries(limit=2)] == [3, 4]


def test_a_big_detail_is_kept_as_a_preview_and_its_hash(tmp_path: Path) -> None:
    log, _ = make_log(tmp_path, 0)
    entry = log.append("alice", "agent", "approval_requested", "alice", {"input": "x" * 100_000})
    assert entry is not None
    kept = entry.to_wire()["detail"]["input"]
    assert kept["length"] == 100_000 and len(kept["preview"]) == 200 and len(kept["sha256"]) == 64
    assert len(entry.detail) < 1000


# -- the pure walk, fed rows -----------------------------------------------------------


def chain(n: int) -> list[AuditEntry]:
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        entry = seal(prev, i, 10.0 + i, "core", "core", "agent_state", "a", {"n": i})
        rows.append(entry)
        prev = entry.hash
    return rows


def walk(rows: list[AuditEntry], head: Head | None) -> tuple[bool, int | None]:
    walker = ChainWalker(head)
    for row in rows:
        if not walker.feed(row):
            break
    result = walker.finish()
    return result.ok, result.first_bad


def test_a_walk_accepts_a_whole_chain_and_one_entry_past_its_head() -> None:
    rows = chain(4)
    assert walk(rows, Head(4, 4, rows[3].hash)) == (True, None)
    assert walk(rows, Head(3, 3, rows[2].hash)) == (True, None)  # a crash before the head


@pytest.mark.parametrize(
    ("change", "first_bad"),
    [
        (lambda rows: rows[:1] + rows[2:], 3),  # #2 removed
        (lambda rows: rows[1:], 2),  # #1 removed
        (lambda rows: rows[:3], 4),  # the last removed: only the head knows
        (lambda rows: [rows[0], rows[2], rows[1], rows[3]], 3),  # reordered by id
    ],
)
def test_a_walk_names_the_first_bad_entry(change: object, first_bad: int) -> None:
    rows = chain(4)
    head = Head(4, 4, rows[3].hash)
    assert callable(change)
    assert walk(change(rows), head) == (False, first_bad)


def test_a_rewritten_tail_does_not_match_the_head() -> None:
    rows = chain(4)
    forged = seal(rows[2].hash, 4, 99.0, "operator", "cli", "nothing", None, {})
    assert walk([*rows[:3], forged], Head(4, 4, rows[3].hash)) == (False, 4)


def test_entries_without_a_head_do_not_verify() -> None:
    assert walk(chain(2), None) == (False, None)
    assert walk([], None) == (True, None)
