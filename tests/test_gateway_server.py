"""The core's model gateway on a real started hive, FakeAnthropic as its upstream: what
goes through an agent's api.sock, what does not, and what a hostile client cannot do."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hyperhive.config import Config
from hyperhive.core.hive import Hive
from support.fake_anthropic import FakeAnthropic, HangReply, Turns, reply_error, reply_text
from support.gateway import WAIT, api_socket, client, error_of, message, raw_exchange

CLIENT_KEY = "sk-ant-client-supplied"


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


def gateway_config(short_dir: Path, **overrides: object) -> Config:
    return Config(
        state_dir=short_dir / "state",
        run_dir=short_dir / "run",
        line_timeout=1.0,  # a request must arrive whole within a second
        gateway_max_body=4096,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
async def hive(short_dir: Path, api: FakeAnthropic) -> AsyncIterator[Hive]:
    # The core's env is the fake's: its base URL is the upstream, its key the hive's.
    running = Hive(gateway_config(short_dir, gateway_connections=4), env=api.env())
    await running.start()
    await running.add_agent("alice", None)
    try:
        yield running
    finally:
        await running.shutdown(grace=2.0)


async def test_a_request_reaches_the_upstream_with_the_hives_key_and_not_the_clients(
    hive: Hive, api: FakeAnthropic
) -> None:
    api.script = Turns(auxiliary=reply_text("hi alice"))
    headers = {
        "x-api-key": CLIENT_KEY,
        "authorization": f"Bearer {CLIENT_KEY}",
        "anthropic-version": "2023-06-01",
    }

    async with client(api_socket(hive, "alice")) as http:
        answer = await http.post("/v1/messages?beta=true", json=message(), headers=headers)

    assert answer.status_code == 200, answer.text
    assert answer.json()["content"] == [{"type": "text", "text": "hi alice"}]
    [request] = api.requests
    assert (request.path, request.query) == ("/v1/messages", "beta=true")
    assert request.auth == {"x-api-key": "sk-ant-fake-key"}
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["accept-encoding"] == "identity"


async def test_a_stream_reaches_the_client_chunk_by_chunk(hive: Hive, api: FakeAnthropic) -> None:
    hang = HangReply(partial_text="first part", then_text=" and the rest")
    api.script = Turns(auxiliary=hang)

    async with (
        client(api_socket(hive, "alice")) as http,
        http.stream("POST", "/v1/messages", json=message(stream=True)) as answer,
    ):
        assert answer.status_code == 200
        seen = b""
        chunks = answer.aiter_raw()
        async with asyncio.timeout(WAIT):
            while b"first part" not in seen:
                seen += await anext(chunks)
        # The fake holds the rest of its answer until released: what came is streamed.
        assert not hang.release.is_set()
        hang.release.set()
        async with asyncio.timeout(WAIT):
            async for chunk in chunks:
                seen += chunk

    assert b" and the rest" in seen
    assert seen.rstrip().endswith(b'{"type": "message_stop"}')


async def test_a_client_hanging_up_mid_stream_ends_the_upstream_answer(
    hive: Hive, api: FakeAnthropic
) -> None:
    hang = HangReply()
    api.script = Turns(auxiliary=hang)

    async with (
        client(api_socket(hive, "alice")) as http,
        http.stream("POST", "/v1/messages", json=message(stream=True)) as answer,
    ):
        async with asyncio.timeout(WAIT):
            await anext(answer.aiter_raw())
            await hang.started.wait()

    async with asyncio.timeout(WAIT):
        await hang.disconnected.wait()
    assert not hang.release.is_set()


async def test_upstream_errors_reach_the_client_unchanged(hive: Hive, api: FakeAnthropic) -> None:
    headers = (("request-id", "req_fake_1"), ("x-should-retry", "false"))
    api.script = Turns(auxiliary=reply_error(400, "invalid_request_error", "no!", headers=headers))

    async with client(api_socket(hive, "alice")) as http:
        answer = await http.post("/v1/messages", json=message())

    assert answer.status_code == 400
    assert answer.headers["request-id"] == "req_fake_1"
    assert answer.headers["x-should-retry"] == "false"
    assert error_of(answer.content) == {"type": "invalid_request_error", "message": "no!"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages"),
        ("POST", "/v1/models"),
        ("POST", "/api/hello"),
        ("POST", "/v1/messages/batches"),
        ("POST", "/v1/messages/../complete"),
    ],
)
async def test_other_routes_are_answered_404_and_never_forwarded(
    hive: Hive, api: FakeAnthropic, method: str, path: str
) -> None:
    async with client(api_socket(hive, "alice")) as http:
        answer = await http.request(method, path, content=b"{}")

    assert answer.status_code == 404
    assert error_of(answer.content)["type"] == "not_found_error"
    assert api.requests == []


async def test_a_head_request_gets_a_bodiless_404_and_the_connection_serves_on(
    hive: Hive, api: FakeAnthropic
) -> None:
    async with client(api_socket(hive, "alice")) as http:
        head = await http.head("/")
        after = await http.post("/v1/messages", json=message())

    assert head.status_code == 404
    assert head.content == b""
    assert after.status_code == 200


async def test_count_tokens_is_forwarded(hive: Hive, api: FakeAnthropic) -> None:
    async with client(api_socket(hive, "alice")) as http:
        answer = await http.post("/v1/messages/count_tokens", json=message())

    assert answer.status_code == 200
    assert answer.json()["input_tokens"] > 0
    assert [r.path for r in api.requests] == ["/v1/messages/count_tokens"]


async def test_an_oversized_body_gets_413_and_the_gateway_serves_on(
    hive: Hive, api: FakeAnthropic
) -> None:
    big = message(text="x" * 5000)  # the config allows 4096 bytes
    async with client(api_socket(hive, "alice")) as http:
        refused = await http.post("/v1/messages", json=big)
        served = await http.post("/v1/messages", json=message())

    assert refused.status_code == 413
    assert error_of(refused.content)["type"] == "request_too_large"
    assert served.status_code == 200
    assert len(api.requests) == 1


async def test_an_oversized_chunked_body_gets_413(hive: Hive, api: FakeAnthropic) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    async with client(api_socket(hive, "alice")) as http:
        refused = await http.post("/v1/messages", content=chunks())

    assert refused.status_code == 413
    assert api.requests == []


async def test_an_oversized_head_gets_431(hive: Hive, api: FakeAnthropic) -> None:
    head = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-junk: " + b"y" * 70_000 + b"\r\n\r\n"

    answer = await raw_exchange(api_socket(hive, "alice"), head)

    assert answer.startswith(b"HTTP/1.1 431 ")
    assert api.requests == []


async def test_a_held_connection_is_cut_and_others_are_served(
    hive: Hive, api: FakeAnthropic
) -> None:
    sock = api_socket(hive, "alice")
    # Half a head, and then nothing: the core gives it line_timeout (1 s) to arrive.
    held = asyncio.create_task(raw_exchange(sock, b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n"))

    async with client(sock) as http:
        served = await http.post("/v1/messages", json=message())

    assert served.status_code == 200
    answer = await held
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert api.requests[0].path == "/v1/messages"


async def test_connections_beyond_the_sockets_cap_are_refused(
    hive: Hive, api: FakeAnthropic
) -> None:
    sock = api_socket(hive, "alice")
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(4):  # the cap; each client keeps its connection open after a request
            http = await stack.enter_async_context(client(sock))
            assert (await http.get("/v1/nothing")).status_code == 404
        assert hive.gateway.connections("alice") == 4

        refused = await raw_exchange(sock, b"")

    assert refused.startswith(b"HTTP/1.1 429 ")
    assert error_of(refused.partition(b"\r\n\r\n")[2])["type"] == "rate_limit_error"
    async with client(sock) as http:
        assert (await http.post("/v1/messages", json=message())).status_code == 200


async def test_a_removed_agents_api_socket_goes_with_it(hive: Hive) -> None:
    sock = api_socket(hive, "alice")

    await hive.remove_agent("alice")

    assert not sock.exists()
    assert hive.gateway.socket("alice") is None


async def test_the_api_socket_is_private_to_the_core(hive: Hive) -> None:
    sock = api_socket(hive, "alice")

    assert sock.name == "api.sock"
    assert sock.parent == hive.config.agent_socket("alice", manager=False).parent
    assert sock.stat().st_mode & 0o777 == 0o600


async def test_a_throttled_request_is_retried_by_the_gateway(
    hive: Hive, api: FakeAnthropic
) -> None:
    api.storm(2, retry_after="0")
    api.script = Turns(auxiliary=reply_text("after the storm"))

    async with client(api_socket(hive, "alice")) as http:
        answer = await http.post("/v1/messages", json=message())

    assert answer.status_code == 200
    assert answer.json()["content"][0]["text"] == "after the storm"
    assert (api.storm_answers, len(api.requests)) == (2, 3)


async def test_a_429_beyond_the_retry_window_reaches_the_client_unchanged(
    short_dir: Path, api: FakeAnthropic
) -> None:
    running = Hive(gateway_config(short_dir, gateway_retry_for=1.0), env=api.env())
    await running.start()
    try:
        await running.add_agent("alice", None)
        api.storm(retry_after="30", status=429, error_type="rate_limit_error")
        async with client(api_socket(running, "alice")) as http:
            answer = await http.post("/v1/messages", content=json.dumps(message()))
    finally:
        await running.shutdown(grace=2.0)

    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "30"
    assert error_of(answer.content)["type"] == "rate_limit_error"
    assert len(api.requests) == 1
