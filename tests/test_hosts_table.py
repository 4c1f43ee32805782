"""The hosts table (core/hosts/table.py) on each real store, and this core's heartbeat
(core/hosts/heartbeat.py) writing it: beats land, a store that fails for a while is
logged once and beaten again, and close ends the task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperhive.core.db import Database, open_store
from hyperhive.core.hosts.heartbeat import Heartbeat, Sample, mem_available
from hyperhive.core.hosts.status import HostRow
from hyperhive.core.hosts.table import HostTable
from hyperhive.errors import HiveError

GIB = 1024**3
WAIT = 10.0  # a bound: beats come every 10 ms
URL = "http://alpha:7000"
LOGGER = "hyperhive.core.hosts.heartbeat"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FixedProbe:
    """The same numbers every beat; counts its calls, one per beat after the announce."""

    def __init__(self, sample: Sample) -> None:
        self.sample = sample
        self.calls = 0
        self._called = asyncio.Event()

    def __call__(self) -> Sample:
        self.calls += 1
        self._called.set()
        return self.sample

    async def called(self, times: int) -> None:
        """Until it was called ``times`` times in all: every beat before the last is written
        (a beat is synchronous, probe then write)."""
        async with asyncio.timeout(WAIT):
            while self.calls < times:
                self._called.clear()
                await self._called.wait()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    """A sqlite file: the failure tests break it in sqlite's ways."""
    db = open_store(tmp_path / "hive.db")
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def any_store(both_stores: str, store_target: str | Path) -> Iterator[Database]:
    """Each store in turn: the table's SQL is the subset both speak."""
    db = open_store(store_target)
    try:
        yield db
    finally:
        db.close()


def heartbeat_task() -> asyncio.Task[object]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "heartbeat-alpha"]
    return task


def test_announce_beat_and_all_round_trip_by_name(any_store: Database) -> None:
    clock = Clock()
    table = HostTable(any_store, clock)
    table.announce("beta", None, 2)
    table.announce("alpha", URL, 8)
    clock.now = 1004.0
    table.beat("alpha", 3, 1.5, 6 * GIB)
    assert table.all() == [
        HostRow("alpha", URL, 1000.0, 1004.0, 3, 8, 1.5, 6 * GIB),
        HostRow("beta", None, 1000.0, 1000.0, 0, 2, 0.0, 0),
    ]
    assert table.get("gamma") is None
    # A restarted core announces again: started now, its old numbers gone until it beats.
    clock.now = 1100.0
    table.announce("alpha", "http://alpha:7001", 8)
    assert table.get("alpha") == HostRow("alpha", "http://alpha:7001", 1100.0, 1100.0, 0, 8, 0, 0)


def test_a_beat_after_the_row_was_deleted_announces_the_host_again(any_store: Database) -> None:
    clock = Clock()
    table = HostTable(any_store, clock)
    table.announce("alpha", URL, 4)
    any_store.execute("DELETE FROM hosts WHERE name = ?", ("alpha",))
    clock.now = 1005.0
    table.beat("alpha", 1, 0.25, GIB)
    assert table.all() == [HostRow("alpha", URL, 1005.0, 1005.0, 1, 4, 0.25, GIB)]


def test_a_beat_from_a_host_never_announced_here_is_refused(any_store: Database) -> None:
    with pytest.raises(HiveError, match="'ghost' beat before it was announced"):
        HostTable(any_store, Clock()).beat("ghost", 0, 0.0, 0)
    assert HostTable(any_store).all() == []


def test_mem_available_reads_proc_meminfo_in_bytes(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    2048 kB\n")
    assert mem_available(meminfo) == 2048 * 1024
    assert mem_available(tmp_path / "absent") == 0


async def test_the_heartbeat_announces_then_writes_beats_until_closed(any_store: Database) -> None:
    clock = Clock()
    table = HostTable(any_store, clock)
    probe = FixedProbe(Sample(cpus=4, load=0.5, mem_available=3 * GIB))
    beat = Heartbeat(table, "alpha", URL, lambda: 2, interval=0.01, probe=probe)
    await beat.start()
    assert table.get("alpha") == HostRow("alpha", URL, 1000.0, 1000.0, 0, 4, 0.0, 0)
    clock.now = 1010.0
    await probe.called(3)  # the announce's, then two beats: the first is written
    assert table.get("alpha") == HostRow("alpha", URL, 1000.0, 1010.0, 2, 4, 0.5, 3 * GIB)
    clock.now = 1020.0
    await probe.called(probe.calls + 2)
    assert table.all() == [HostRow("alpha", URL, 1000.0, 1020.0, 2, 4, 0.5, 3 * GIB)]
    task = heartbeat_task()
    await beat.close()
    assert task.cancelled()
    assert not beat.running


async def test_a_closed_store_fails_beats_logged_once_and_close_still_ends_the_task(
    store: Database, caplog: pytest.LogCaptureFixture
) -> None:
    table = HostTable(store, Clock())
    probe = FixedProbe(Sample(cpus=2, load=0.0, mem_available=GIB))
    beat = Heartbeat(table, "alpha", URL, lambda: 0, interval=0.01, probe=probe)
    await beat.start()
    await probe.called(2)
    store.close()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await probe.called(probe.calls + 4)  # three beats at least failed
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "host alpha: heartbeat not recorded, retrying each beat: "
        f"{store.location}: Cannot operate on a closed database."
    ]
    assert beat.running
    task = heartbeat_task()
    await beat.close()
    assert task.cancelled()
    assert not beat.running


async def test_beats_resume_once_the_store_answers_again(
    store: Database, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    table = HostTable(store, clock)
    probe = FixedProbe(Sample(cpus=2, load=0.75, mem_available=GIB))
    beat = Heartbeat(table, "alpha", URL, lambda: 1, interval=0.01, probe=probe)
    await beat.start()
    (ddl,) = store.execute("SELECT sql FROM sqlite_master WHERE name = 'hosts'").fetchone()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store.execute("DROP TABLE hosts")  # a real refusal: "no such table"
        await probe.called(probe.calls + 3)
        store.execute(ddl)
        clock.now = 1030.0
        await probe.called(probe.calls + 2)
    # The row went with the table: the next beat announced the host again.
    assert table.all() == [HostRow("alpha", URL, 1030.0, 1030.0, 1, 2, 0.75, GIB)]
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "host alpha: heartbeat not recorded, retrying each beat: "
        f"{store.location}: no such table: hosts",
        "host alpha: heartbeat recorded again",
    ]
    await beat.close()


async def test_a_core_without_containers_is_kept_as_one_that_runs_no_agents(
    any_store: Database,
) -> None:
    clock = Clock()
    table = HostTable(any_store, clock)
    probe = FixedProbe(Sample(cpus=4, load=0.0, mem_available=GIB))
    beat = Heartbeat(table, "alpha", URL, lambda: 0, interval=60.0, probe=probe, runs_agents=False)
    await beat.start()
    await beat.close()
    assert table.get("alpha") == HostRow("alpha", URL, 1000.0, 1000.0, 0, 4, 0.0, 0, False)
    # Forgotten and announced again by its next beat: still one that runs none.
    any_store.execute("DELETE FROM hosts WHERE name = ?", ("alpha",))
    assert beat.beat()
    assert table.all() == [HostRow("alpha", URL, 1000.0, 1000.0, 0, 4, 0.0, GIB, False)]
    # Restarted with a backend, it runs agents again.
    table.announce("alpha", URL, 4)
    assert table.get("alpha") == HostRow("alpha", URL, 1000.0, 1000.0, 0, 4, 0.0, 0, True)
