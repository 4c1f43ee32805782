"""The JSON-lines protocol: ids, ordering, and bad lines answered without harm."""

from __future__ import annotations

import json

import pytest

from hyperhive.core.hive import Hive
from support.wire import RawConnection


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json\n", "malformed JSON"),
        (b"\xff\xfe\n", "malformed JSON"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"id": 1}\n', "'op' must be a string"),
        (b'{"id": 1, "op": 5}\n', "'op' must be a string"),
        (b'{"id": 1, "op": "ping", "args": []}\n', "'args' must be an object"),
        (b'{"id": 1.5, "op": "ping"}\n', "'id' must be"),
        (b'{"id": 1, "op": "ping", "extra": 1}\n', "unexpected field"),
        (b'{"id": 1, "op": "nope"}\n', "unknown op"),
        (b'{"id": 1, "op": "recv", "args": {"wait": "soon"}}\n', "must be a number"),
        (b'{"id": 1, "op": "recv", "args": {"wait": -1}}\n', "between"),
        (b'{"id": 1, "op": "messages", "args": {"limit": 0}}\n', "between"),
        (b'{"id": 1, "op": "ack", "args": {"lease": "x"}}\n', "no lease"),
        (b"[" * 100000 + b"\n", "malformed JSON"),
        (b'{"id": ' + b"7" * 5000 + b', "op": "ping"}\n', "malformed JSON"),
        (b'{"id": 1, "op": "ping", "args": {"n": ' + b"7" * 5000 + b"}}\n", "malformed JSON"),
        (b'{"id": "' + b"s" * 129 + b'", "op": "ping"}\n', "at most 128 characters"),
        (b'{"id": 1152921504606846976, "op": "ping"}\n', "within ±2**53"),
        (b'{"id": -9007199254740993, "op": "ping"}\n', "within ±2**53"),
    ],
)
async def test_a_bad_line_gets_an_error_and_the_connection_stays_usable(
    hive: Hive, line: bytes, message: str
) -> None:
    conn = await RawConnection.open(hive.config.host_socket)
    try:
        await conn.send(line)
        answer = await conn.answer()
        assert answer is not None
        assert answer["ok"] is False
        assert message in answer["error"]["message"]
        await conn.send(b'{"id": "next", "op": "ping"}\n')
        assert await conn.answer() == {
            "id": "next",
            "ok": True,
            "result": {"pong": True, "version": "0.1.0"},
        }
    finally:
        await conn.close()


async def test_an_oversized_line_closes_only_that_connection(hive: Hive) -> None:
    bystander = await RawConnection.open(hive.config.host_socket)
    offender = await RawConnection.open(hive.config.host_socket)
    try:
        await offender.send(b'{"id": 1, "op": "ping", "args": {"pad": "' + b"x" * (1 << 20))
        await offender.send(b'"}}\n')
        answer = await offender.answer()
        assert answer is not None and answer["error"]["code"] == "too_large"
        assert await offender.answer() is None  # then closed
        await bystander.send(b'{"id": 2, "op": "ping"}\n')
        answer = await bystander.answer()
        assert answer is not None and answer["ok"] is True
    finally:
        await offender.close()
        await bystander.close()


async def test_pipelined_requests_are_answered_in_order_with_their_ids(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    conn = await RawConnection.open(hive.config.host_socket)
    try:
        requests = [
            {"id": 1, "op": "send", "args": {"to": "alice", "body": "one"}},
            {"id": "two", "op": "send", "args": {"to": "nobody", "body": "x"}},
            {"id": 3, "op": "recv", "args": {"wait": 0}},
            {"op": "ping"},
        ]
        await conn.send(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        answers = [await conn.answer() for _ in requests]
    finally:
        await conn.close()
    assert [a["id"] if a else "closed" for a in answers] == [1, "two", 3, None]
    assert [a["ok"] if a else None for a in answers] == [True, False, True, True]


async def test_a_last_line_without_newline_is_still_answered(hive: Hive) -> None:
    conn = await RawConnection.open(hive.config.host_socket)
    try:
        await conn.send(b'{"id": 9, "op": "ping"}')
        conn.writer.write_eof()
        answer = await conn.answer()
        assert answer is not None and answer["id"] == 9 and answer["ok"] is True
        assert await conn.answer() is None
    finally:
        await conn.close()


async def test_the_host_socket_is_private_to_its_owner(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    agent_socket = hive.socket_path(hive.registry.get("alice"))
    assert hive.config.host_socket.stat().st_mode & 0o777 == 0o600
    assert agent_socket.stat().st_mode & 0o777 == 0o600
    assert agent_socket.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    "rid",
    ["7" * 5000, '"' + "s" * 200 + '"', "1.5", str(2**60), "true", "[1]"],
)
async def test_an_id_that_cannot_be_echoed_exactly_is_refused_with_a_null_id(
    hive: Hive, rid: str
) -> None:
    conn = await RawConnection.open(hive.config.host_socket)
    try:
        await conn.send(b'{"id": ' + rid.encode() + b', "op": "ping"}\n')
        answer = await conn.answer()
        assert answer is not None
        assert (answer["id"], answer["ok"], answer["error"]["code"]) == (None, False, "bad_request")
        assert len(answer["error"]["message"]) < 300  # the offending digits are not echoed
    finally:
        await conn.close()


@pytest.mark.parametrize("rid", [2**53, -(2**53), "s" * 128, 0, ""])
async def test_ids_at_the_bounds_come_back_unchanged(hive: Hive, rid: int | str) -> None:
    conn = await RawConnection.open(hive.config.host_socket)
    try:
        await conn.send(json.dumps({"id": rid, "op": "ping"}).encode() + b"\n")
        answer = await conn.answer()
        assert answer is not None and answer["id"] == rid and answer["ok"] is True
    finally:
        await conn.close()


async def test_a_request_pipelined_behind_a_long_poll_waits_its_turn(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    conn = await RawConnection.open(hive.socket_path(hive.registry.get("alice")))
    try:
        await conn.send(
            b'{"id": 1, "op": "recv", "args": {"wait": 0.5}}\n{"id": 2, "op": "ping"}\n'
        )
        first, second = await conn.answer(), await conn.answer()
    finally:
        await conn.close()
    assert first == {"id": 1, "ok": True, "result": None}
    assert second is not None and second["id"] == 2 and second["ok"] is True
