"""The outbox and its dispatcher on a real sqlite file, with the fake transport: what is
stored survives a restart, a removed sink's rows are dropped with a record, the outbox
stays bounded while a sink is down, and sinks only get the events they asked for."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from hyperhive.core.bus import EventBus
from hyperhive.core.db import Database, open_store
from hyperhive.core.notify.dispatcher import Notifications
from hyperhive.core.notify.events import make
from hyperhive.core.notify.fake import FakeTransport
from hyperhive.core.notify.outbox import KEEP_SECONDS, MAX_PENDING, Outbox, backoff
from hyperhive.settings import LiveSettings, NotifySettings, NtfySink, Settings, WebhookSink

WAIT = 10.0
HOOK = WebhookSink("hook", "http://127.0.0.1:9/hook", secret="whsec-must-not-leak")


def question(n: int) -> dict[str, object]:
    return {"type": "question_asked", "question": {"id": n, "asker": "hm1nd", "question": f"q{n}"}}


@dataclass
class Rig:
    conn: Database
    bus: EventBus
    settings: LiveSettings
    transport: FakeTransport
    service: Notifications


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Database]:
    opened = open_store(tmp_path / "hive.db")
    yield opened
    opened.close()


@pytest.fixture
async def rigs(conn: Database) -> AsyncIterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def rig(**notify: object) -> Rig:
        fields: dict[str, object] = {"sinks": (HOOK,), "backoff_first": 0.02, **notify}
        settings = LiveSettings(Settings(notify=NotifySettings(**fields)))  # type: ignore[arg-type]
        bus, transport = EventBus(), FakeTransport()
        service = Notifications(conn, bus, settings, lambda: "", transport=transport)
        service.start()
        made.append(Rig(conn, bus, settings, transport, service))
        return made[-1]

    yield rig
    for each in made:
        await each.service.close(grace=1)


async def until(service: Notifications, check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():
            await service.changed()


async def test_what_was_stored_goes_out_after_a_restart(rigs: Callable[..., Rig]) -> None:
    first = rigs()
    first.transport.failing.add("hook")
    first.bus.publish(question(1))
    await until(first.service, lambda: first.service.stats()["hook"]["failed"] >= 1)
    await first.service.close(grace=1)
    assert first.transport.closed and first.transport.tries[0] == ("hook", 1)
    second = rigs()  # the same database, as after a core restart
    await until(second.service, lambda: second.service.stats()["hook"]["delivered"] == 1)
    [(sink, delivery)] = second.transport.sent
    assert sink == "hook" and delivery.note.data["id"] == 1


async def test_a_removed_sink_has_its_rows_dropped_with_a_record(rigs: Callable[..., Rig]) -> None:
    rig = rigs(backoff_first=60.0)
    rig.transport.failing.add("hook")
    rig.bus.publish(question(1))
    await until(rig.service, lambda: rig.service.stats()["hook"]["failed"] == 1)
    other = NtfySink("phone", "http://127.0.0.1:9/t")
    current = rig.settings.current()
    rig.settings.replace(replace(current, notify=replace(current.notify, sinks=(other,))))
    rig.bus.publish(question(2))  # wakes the worker, and goes to the new sink only
    await until(rig.service, lambda: rig.service.stats()["phone"]["delivered"] == 1)
    rows = {r.sink: r for r in rig.service.outbox.recent(10)}
    assert rows["hook"].state == "dropped"
    assert rows["hook"].last_error == "its sink is no longer configured"


async def test_a_sink_down_for_long_costs_a_bounded_outbox_folded_into_a_digest(
    rigs: Callable[..., Rig],
) -> None:
    rig = rigs(backoff_first=60.0)
    rig.transport.failing.add("hook")
    for n in range(MAX_PENDING * 3):  # published at once: the worker has not run yet
        rig.bus.publish(question(n))
    pending = [r for r in rig.service.outbox.recent(MAX_PENDING * 4) if r.state == "pending"]
    assert len(pending) <= MAX_PENDING + 1
    [digest] = [r for r in pending if r.kind == "digest"]
    # Every question is in the one pending digest or still a row of its own.
    assert digest.notification().data["count"] + len(pending) - 1 == MAX_PENDING * 3
    rig.transport.failing.clear()
    await until(rig.service, lambda: rig.service.stats()["hook"]["pending"] == 0)


async def test_a_sink_gets_only_the_events_it_asked_for(rigs: Callable[..., Rig]) -> None:
    only_failures = replace(HOOK, name="pager", events=frozenset({"failed"}))
    rig = rigs(sinks=(HOOK, only_failures))
    rig.bus.publish(question(1))
    rig.bus.publish({"type": "agent_state", "agent": "bob", "state": "failed"})
    await until(rig.service, lambda: len(rig.transport.sent) == 3)
    got = sorted((sink, d.note.kind) for sink, d in rig.transport.sent)
    assert got == [("hook", "failed"), ("hook", "question"), ("pager", "failed")]


def test_backoff_doubles_from_the_first_and_stops_at_the_cap() -> None:
    settings = NotifySettings(backoff_first=1.0, backoff_max=5.0)
    assert [backoff(n, settings) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_finished_rows_are_pruned_after_their_time_and_pending_ones_never(
    conn: Database,
) -> None:
    outbox = Outbox(conn)
    note = make("question", "t", "b", "/", {})
    old, kept, waiting = (outbox.enqueue("hook", note, 0.0) for _ in range(3))
    outbox.delivered(old, 1.0)
    outbox.delivered(kept, KEEP_SECONDS + 10.0)
    outbox.prune(KEEP_SECONDS + 100.0)
    assert [r.id for r in outbox.recent(10)] == [waiting, kept]


async def test_a_failing_http_sink_logs_its_name_never_its_secret_or_token(
    conn: Database, caplog: pytest.LogCaptureFixture
) -> None:
    token_url = "http://127.0.0.1:9/topic-with-secret-name"
    phone = NtfySink("phone", token_url, token="tk_must_not_leak")
    notify = NotifySettings(sinks=(HOOK, phone), max_tries=2, backoff_first=0.01)
    bus = EventBus()
    service = Notifications(conn, bus, LiveSettings(Settings(notify=notify)), lambda: "")
    service.start()
    try:
        with caplog.at_level(logging.INFO, logger="hyperhive"):
            bus.publish(question(1))
            await until(service, lambda: sum(s["dropped"] for s in service.stats().values()) == 2)
    finally:
        await service.close(grace=1)
    text = caplog.text + "".join(str(r.last_error) for r in service.outbox.recent(10))
    assert "phone" in text and "hook" in text
    for secret in ("whsec-must-not-leak", "tk_must_not_leak", "topic-with-secret-name"):
        assert secret not in text
