"""Notifications from a real in-process core (fake backend) to a real HTTP receiver on
127.0.0.1: every kind of request reaches a signed webhook and an ntfy publish within a
second, carrying the exact request; a receiver that is down gets it when it is back; a
burst arrives as a digest; and the core keeps answering while a receiver hangs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hyperhive.backends.fake import FakeBackend
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.core.notify.dispatcher import Notifications
from hyperhive.core.operator_token import DashboardLink
from hyperhive.settings import LiveSettings, NotifySettings, NtfySink, Settings, WebhookSink
from support.fake_hive import ENV, host, manager
from support.receiver import Received, Receiver

SECRET = "whsec-0123456789abcdef"
TOKEN = "tk_notify_token_0123456789"
DASHBOARD = "https://hive.example.org/"
WAIT = 10.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver()
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def notify(receiver: Receiver, **extra: Any) -> NotifySettings:
    hook = WebhookSink("hook", receiver.url("/hook"), secret=SECRET, timeout=extra.pop("t", 5.0))
    phone = NtfySink("phone", receiver.url("/hive-alerts"), token=TOKEN, tags=("hive",))
    sinks = extra.pop("sinks", (hook, phone))
    fields: dict[str, Any] = {"backoff_first": 0.05, "backoff_max": 0.2, **extra}
    return NotifySettings(sinks=sinks, dashboard_url=DASHBOARD, **fields)


async def started(config: Config, settings: NotifySettings) -> Hive:
    hive = Hive(config, FakeBackend(), env=ENV, settings=LiveSettings(Settings(notify=settings)))
    await hive.start(manager=True)
    return hive


@pytest.fixture
async def swarm(config: Config, receiver: Receiver) -> AsyncIterator[Hive]:
    hive = await started(config, notify(receiver))
    try:
        yield hive
    finally:
        await hive.shutdown(grace=2)


def verified(got: Received) -> dict[str, Any]:
    """A webhook POST whose signature holds: its JSON."""
    assert got.method == "POST" and got.headers["content-type"] == "application/json"
    expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["x-hyperhive-signature"], expected)
    assert SECRET not in got.body.decode()
    wire: dict[str, Any] = json.loads(got.body)
    assert got.headers["x-hyperhive-delivery"] == str(wire["id"])
    assert got.headers["x-hyperhive-event"] == wire["kind"]
    return wire


async def both(receiver: Receiver, wait: float = 1.0) -> tuple[dict[str, Any], Received]:
    """The next webhook POST (verified) and ntfy publish, both within ``wait`` seconds."""
    found: dict[str, Received] = {}
    async with asyncio.timeout(wait):
        while len(found) < 2:
            got = await receiver.requests.get()
            assert got.path not in found, f"a second POST to {got.path}"
            found[got.path] = got
    return verified(found["/hook"]), found["/hive-alerts"]


def assert_ntfy(got: Received, title: str, click: str) -> None:
    assert got.method == "POST"
    assert got.headers["title"] == title and got.headers["click"] == click
    assert got.headers["priority"] == "4" and got.headers["tags"] == "raising_hand,hive"
    assert got.headers["authorization"] == f"Bearer {TOKEN}"


async def git(repo: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=repo, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def test_each_kind_of_request_reaches_the_webhook_and_ntfy_within_a_second(
    swarm: Hive, receiver: Receiver
) -> None:
    config = 'role = "tester"\n'
    asked = await manager(swarm, "request_spawn", name="carol", reason="a tester", config=config)
    hook, phone = await both(receiver)
    link = f"{DASHBOARD.rstrip('/')}/#approval-{asked['id']}"
    assert (hook["kind"], hook["link"], hook["title"]) == (
        "approval",
        link,
        "hm1nd asks to spawn carol",
    )
    assert hook["data"] == {
        "id": asked["id"],
        "kind": "spawn",
        "agent": "carol",
        "requester": "hm1nd",
        "reason": "a tester",
        "config": config,
    }
    assert_ntfy(phone, "hm1nd asks to spawn carol", link)
    assert config.strip() in phone.body.decode()

    await host(swarm, "spawn", name="bob")
    repo = swarm.config.state_dir / "proposed" / "bob" / "config"
    (repo / "agent.toml").write_text('role = "reviewer"\n' + (repo / "agent.toml").read_text())
    await git(repo, "commit", "-qam", "bob reviews")
    sha = await git(repo, "rev-parse", "HEAD")
    asked = await manager(swarm, "request_apply_commit", name="bob", sha=sha, reason="review")
    hook, phone = await both(receiver)
    assert hook["data"]["kind"] == "apply_commit" and hook["data"]["sha"] == sha
    assert (hook["data"]["agent"], hook["data"]["reason"]) == ("bob", "review")
    assert_ntfy(phone, "hm1nd asks to change bob's config", hook["link"])
    assert sha in phone.body.decode()
    [changed] = hook["data"]["diffstat"]["files"]  # what the operator would approve
    assert changed["path"] == "agent.toml" and changed["added"] >= 1
    assert "agent.toml +" in phone.body.decode()

    tool_input = {"command": "rm -rf /work/build", "description": "clean the build"}
    async with await Client.connect(swarm.socket_path(swarm.registry.get("bob"))) as bob:
        answer = await bob.call("tool_use", tool="Bash", input=tool_input)
    assert answer["decision"] == "pending"
    hook, phone = await both(receiver)
    shown = await host(swarm, "approval", id=answer["approval"])
    assert hook["data"]["tool"] == "Bash" and hook["data"]["input"] == tool_input
    assert hook["data"]["input_json"] == shown["input_json"]  # the exact text approved
    assert_ntfy(phone, "bob asks to use Bash", f"{DASHBOARD}#approval-{answer['approval']}")
    assert shown["input_json"] in phone.body.decode()

    question = await manager(swarm, "ask_operator", question="ship it?", options=["yes", "no"])
    hook, phone = await both(receiver)
    assert hook["kind"] == "question" and hook["link"] == f"{DASHBOARD}#question-{question['id']}"
    assert hook["data"]["question"] == "ship it?" and hook["data"]["options"] == ["yes", "no"]
    assert phone.headers["click"] == hook["link"] and "ship it?" in phone.body.decode()

    # The receiver records a POST before it answers: the outbox marks it just after.
    delivered = ({"hook": 4, "phone": 4}, {"hook": 0, "phone": 0})
    await until(swarm.notifications, lambda: sent(swarm) == delivered)
    assert receiver.drain() == []  # one of each, not more


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"type": "agent_state", "agent": "bob", "state": "failed", "last_error": "x"}, "failed"),
        ({"type": "budget", "agent": "bob", "state": "paused", "text": "bob spent $5"}, "budget"),
        (
            {"type": "stall", "what": "thinking", "agent": "bob", "id": None, "since": 1.0,
             "seconds": 900.0, "text": "bob has been thinking for 15 minutes"},
            "stall",
        ),
    ],
)  # fmt: skip
async def test_a_crash_loop_a_budget_and_a_stall_each_become_one_notification(
    swarm: Hive, receiver: Receiver, event: dict[str, Any], kind: str
) -> None:
    swarm.bus.publish(dict(event))
    hook, phone = await both(receiver)
    assert hook["kind"] == kind and hook["data"]["agent"] == "bob"
    assert phone.headers["click"] == hook["link"] and phone.headers["title"] == hook["title"]


async def test_a_receiver_that_is_down_gets_the_notification_when_it_is_back(
    config: Config, receiver: Receiver
) -> None:
    hook = WebhookSink("hook", receiver.url("/hook"), secret=SECRET)
    hive = await started(config, notify(receiver, sinks=(hook,)))
    try:
        await receiver.stop()
        asked = await manager(hive, "ask_operator", question="still there?")
        await until(hive.notifications, lambda: hive.notifications.stats()["hook"]["failed"] >= 2)
        [row] = hive.notifications.outbox.recent(1)
        assert row.state == "pending" and row.last_error and receiver.url() not in row.last_error
        listed = await host(hive, "notifications")
        assert listed["sinks"]["hook"]["pending"] == 1 and listed["recent"][0]["id"] == row.id
        assert SECRET not in json.dumps(listed) and receiver.url() not in json.dumps(listed)
        await receiver.start()  # the same port
        wire = verified(await receiver.next())
        assert wire["data"]["id"] == asked["id"] and wire["id"] == row.id
        await until(
            hive.notifications, lambda: hive.notifications.stats()["hook"]["delivered"] == 1
        )
        assert hive.notifications.stats()["hook"]["pending"] == 0
    finally:
        await hive.shutdown(grace=2)


async def test_a_hundred_events_in_a_second_arrive_as_a_digest_not_a_hundred_posts(
    config: Config, receiver: Receiver
) -> None:
    hook = WebhookSink("hook", receiver.url("/hook"), secret=SECRET)
    settings = notify(receiver, sinks=(hook,), digest_after=5, digest_window=1.0)
    hive = await started(config, settings)
    try:
        for i in range(100):
            hive.bus.publish(
                {"type": "stall", "what": "question", "agent": None, "id": i, "text": f"q{i}"}
            )
        covered, posts, digests = 0, 0, 0
        async with asyncio.timeout(WAIT):
            while covered < 100:
                wire = verified(await receiver.requests.get())
                posts += 1
                digests += wire["kind"] == "digest"
                covered += wire["data"]["count"] if wire["kind"] == "digest" else 1
        assert covered == 100 and digests >= 1 and posts <= 10
        await until(hive.notifications, lambda: hive.notifications.stats()["hook"]["pending"] == 0)
        assert hive.notifications.stats()["hook"]["folded"] >= 90
    finally:
        await hive.shutdown(grace=2)


async def test_the_core_keeps_serving_while_a_receiver_hangs(
    config: Config, receiver: Receiver
) -> None:
    hook = WebhookSink("hook", receiver.url("/hook"), secret=SECRET, timeout=60.0)
    hive = await started(config, notify(receiver, sinks=(hook,)))
    try:
        receiver.mode = "hang"
        await manager(hive, "ask_operator", question="first")
        await receiver.next()  # held open: never answered
        async with asyncio.timeout(1.0):
            status = await host(hive, "status")
            second = await manager(hive, "ask_operator", question="second")
            listed = await host(hive, "questions")
        assert status and second["id"] in [q["id"] for q in listed["pending"]]
        assert hive.notifications.stats()["hook"]["pending"] == 2
    finally:
        await receiver.stop()
        await hive.shutdown(grace=2)


async def test_links_point_at_where_the_dashboard_listens_without_its_token(
    config: Config, receiver: Receiver
) -> None:
    hook = WebhookSink("hook", receiver.url("/hook"), secret=SECRET)
    settings = replace(notify(receiver, sinks=(hook,)), dashboard_url=None)
    hive = await started(config, settings)
    try:
        hive.dashboard_link = DashboardLink("0.0.0.0", 8123, "op-token-that-stays-home-0123456789")
        asked = await manager(hive, "ask_operator", question="where?")
        got = await receiver.next()
        assert verified(got)["link"] == f"http://127.0.0.1:8123/#question-{asked['id']}"
        assert b"op-token" not in got.body
    finally:
        await hive.shutdown(grace=2)


def sent(hive: Hive) -> tuple[dict[str, int], dict[str, int]]:
    stats = hive.notifications.stats()
    return (
        {k: v["delivered"] for k, v in stats.items()},
        {k: v["pending"] + v["failed"] for k, v in stats.items()},
    )


async def until(service: Notifications, check: Callable[[], bool], wait: float = WAIT) -> None:
    """Wait, bounded, until ``check`` holds, looking again after each try's outcome."""
    async with asyncio.timeout(wait):
        while not check():
            await service.changed()
