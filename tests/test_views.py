"""Bounded views of the log: ``messages`` paged and capped in bytes, ``message`` whole,
previews in ``tail``, the dashboard's message view and its live feed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from hyperhive.client import Client, RemoteError
from hyperhive.core.hive import Hive
from hyperhive.core.previews import PAGE_BYTES, PREVIEW_BYTES, cut, preview
from hyperhive.web.dashboard_api import messages_view
from hyperhive.web.dashboard_feed import BusFeed
from support.wire import until_status


async def connect(hive: Hive) -> Client:
    return await Client.connect(hive.config.host_socket)


async def _next(events: AsyncIterator[Any]) -> Any:
    return await anext(events)


def test_a_cut_never_splits_a_character_and_a_short_body_is_left_alone() -> None:
    assert cut("ééé", 5) == "éé"
    assert cut("abc", 3) == "abc"
    short = {"id": 1, "body": "hi"}
    assert preview(short) is short
    long = preview({"id": 2, "body": "€" * 2000})  # 6000 bytes
    assert long["truncated"] is True and long["size"] == 6000
    assert long["body"] == "€" * (PREVIEW_BYTES // 3)


async def test_messages_pages_back_with_before_and_each_message_comes_once(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    for i in range(10):
        hive.broker.send("operator", "alice", f"m{i}")
    seen: list[int] = []
    before: int | None = None
    async with await connect(hive) as op:
        while True:
            extra = {} if before is None else {"before": before}
            page = await op.call("messages", limit=3, **extra)
            if not page:
                break
            assert [m["id"] for m in page] == sorted(m["id"] for m in page)  # oldest first
            seen = [m["id"] for m in page] + seen
            before = page[0]["id"]
        with pytest.raises(RemoteError, match="'before'"):
            await op.call("messages", before=0)
    assert seen == list(range(1, 11))


async def test_a_long_body_is_a_preview_in_messages_and_whole_in_message(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    body = "é" + "x" * (256 * 1024 - 2)  # 256 KiB of UTF-8, one two-byte character
    sent = hive.broker.send("operator", "alice", body)
    short = hive.broker.send("operator", "alice", "short")
    async with await connect(hive) as op:
        listed = {m["id"]: m for m in await op.call("messages")}
        whole = await op.call("message", id=sent.id)
        with pytest.raises(RemoteError) as missing:
            await op.call("message", id=999)
    cut = listed[sent.id]
    assert cut["truncated"] is True and cut["size"] == 256 * 1024
    assert len(cut["body"].encode()) <= PREVIEW_BYTES and body.startswith(cut["body"])
    assert "truncated" not in listed[short.id] and listed[short.id]["body"] == "short"
    assert whole["body"] == body and "truncated" not in whole
    assert missing.value.code == "unknown_message"


async def test_a_page_of_a_thousand_large_messages_stays_under_the_byte_cap(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    # Control characters weigh six bytes each once JSON-escaped; the cap counts that.
    body = ("\x1b[2J" + "z" * 60) * 256
    for _ in range(1000):
        hive.broker.send("operator", "alice", body)
    async with await connect(hive) as op:
        page = await op.call("messages", limit=1000)
        older = await op.call("messages", limit=1000, before=page[0]["id"])
    weight = len(json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode())
    assert weight <= PAGE_BYTES
    assert 100 < len(page) < 1000 and all(m["truncated"] for m in page)
    assert page[-1]["id"] == 1000 and older[-1]["id"] == page[0]["id"] - 1


async def test_tail_shows_previews_of_long_bodies(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    async with await connect(hive) as watcher:
        events = watcher.stream("tail")
        first = asyncio.create_task(_next(events))
        await until_status(hive.config.host_socket, lambda s: s["subscribers"] == 1)
        hive.broker.send("operator", "alice", "w" * (200 * 1024))
        event = await asyncio.wait_for(first, 5)
    assert event["message"]["truncated"] is True
    assert len(event["message"]["body"]) == PREVIEW_BYTES
    assert event["message"]["size"] == 200 * 1024


async def test_the_dashboard_view_pages_like_the_op(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    for i in range(5):
        hive.broker.send("operator", "alice", f"m{i}" + "q" * (i * 3000))
    desk = hive.operator_desk()
    page = await messages_view(desk, "alice", 2)
    assert [m["id"] for m in page] == [4, 5] and all(m["truncated"] for m in page)
    assert [m["id"] for m in await messages_view(desk, None, 10, before=4)] == [1, 2, 3]
    assert await messages_view(desk, None, 10, before=1) == []


async def test_the_dashboard_feed_sends_previews_never_whole_long_bodies(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    feed = BusFeed(hive.bus)
    frames = feed.stream(None, heartbeat=30)
    assert isinstance(frames, AsyncGenerator)
    try:
        assert (await anext(frames)).startswith("retry:")
        assert (await anext(frames)).startswith("event: hello")
        # The feed subscribed before its hello, so this send is on its way.
        hive.broker.send("operator", "alice", "v" * (256 * 1024))
        frame = await asyncio.wait_for(anext(frames), 5)
    finally:
        await frames.aclose()
        feed.close()
    data = json.loads(frame.split("data: ", 1)[1])
    assert data["message"]["truncated"] is True and data["message"]["size"] == 256 * 1024
    assert len(frame) < PREVIEW_BYTES + 1024
