"""The command sink, with real processes: the notification as JSON on stdin, exit 0 is
delivered, and a command that hangs is killed with everything it started, then retried."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hyperhive.core.bus import EventBus
from hyperhive.core.db import Database, open_store
from hyperhive.core.notify.dispatcher import Notifications
from hyperhive.settings import CommandSink, LiveSettings, NotifySettings, Settings

WAIT = 15.0
QUESTION = {"type": "question_asked", "question": {"id": 5, "asker": "hm1nd", "question": "go?"}}

# First run: note its pid and a child's, then hang. Later runs: write stdin to the file.
HANG_ONCE = """
import os, subprocess, sys, time
out, marker = sys.argv[1], sys.argv[2]
if not os.path.exists(marker):
    child = subprocess.Popen(["sleep", "60"])
    with open(marker, "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(60)
with open(out, "wb") as f:
    f.write(sys.stdin.buffer.read())
"""


async def running(tmp_path: Path, sink: CommandSink, closing: Closing) -> Notifications:
    settings = NotifySettings(sinks=(sink,), backoff_first=0.05, backoff_max=0.1, max_tries=3)
    conn = open_store(tmp_path / "hive.db")
    bus = EventBus()
    service = Notifications(conn, bus, LiveSettings(Settings(notify=settings)), lambda: "http://h/")
    service.start()
    closing.append((service, conn))
    bus.publish(dict(QUESTION))
    return service


Closing = list[tuple[Notifications, Database]]


@pytest.fixture
async def closing() -> AsyncIterator[Closing]:
    services: Closing = []
    yield services
    for service, conn in services:
        await service.close(grace=1)
        conn.close()


async def until(service: Notifications, check: Callable[[], bool], wait: float = WAIT) -> None:
    async with asyncio.timeout(wait):
        while not check():
            await service.changed()


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


async def test_a_command_gets_the_notification_as_json_on_stdin(
    tmp_path: Path, closing: Closing
) -> None:
    out = tmp_path / "got.json"
    write = "import sys; open(sys.argv[1], 'wb').write(sys.stdin.buffer.read())"
    sink = CommandSink("script", (sys.executable, "-c", write, str(out)), timeout=10)
    service = await running(tmp_path, sink, closing)
    await until(service, lambda: service.stats()["script"]["delivered"] == 1)
    wire = json.loads(out.read_text())
    assert (wire["kind"], wire["link"]) == ("question", "http://h/#question-5")
    assert wire["data"]["question"] == "go?" and wire["id"] == 1


async def test_a_hanging_command_is_killed_at_its_timeout_and_retried(
    tmp_path: Path, closing: Closing
) -> None:
    out, marker = tmp_path / "got.json", tmp_path / "ran-once"
    argv = (sys.executable, "-c", HANG_ONCE, str(out), str(marker))
    service = await running(tmp_path, CommandSink("script", argv, timeout=1.0), closing)
    await until(service, lambda: service.stats()["script"]["delivered"] == 1)
    first, child = (int(p) for p in marker.read_text().split())
    assert gone(first) and gone(child)  # the whole session, not just the leader
    [row] = service.outbox.recent(1)
    assert row.tries == 2 and row.state == "delivered"
    assert row.last_error is not None and "did not finish within 1s" in row.last_error
    assert json.loads(out.read_text())["data"]["id"] == 5


async def test_a_failing_command_is_dropped_after_max_tries_with_its_error_kept(
    tmp_path: Path, closing: Closing
) -> None:
    fail = "import sys; sys.stderr.write('no route to pager\\n' * 1000); sys.exit(4)"
    service = await running(tmp_path, CommandSink("script", (sys.executable, "-c", fail)), closing)
    await until(service, lambda: service.stats()["script"]["dropped"] == 1)
    [row] = service.outbox.recent(1)
    assert row.state == "dropped" and row.tries == 3
    assert row.last_error is not None and "exited 4: no route to pager" in row.last_error
    assert len(row.last_error) < 1000  # the output is bounded


async def test_a_command_that_cannot_start_is_a_failed_try_not_a_crash(
    tmp_path: Path, closing: Closing
) -> None:
    service = await running(tmp_path, CommandSink("script", (str(tmp_path / "nope"),)), closing)
    await until(service, lambda: service.stats()["script"]["dropped"] == 1)
    [row] = service.outbox.recent(1)
    assert row.last_error is not None and "cannot run" in row.last_error


async def test_the_command_does_not_inherit_the_cores_credentials(
    tmp_path: Path, closing: Closing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
    out = tmp_path / "env.json"
    dump = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    service = await running(
        tmp_path, CommandSink("script", (sys.executable, "-c", dump, str(out))), closing
    )
    await until(service, lambda: service.stats()["script"]["delivered"] == 1)
    env = json.loads(out.read_text())
    assert "ANTHROPIC_API_KEY" not in env and env.get("PATH") == os.environ.get("PATH")
