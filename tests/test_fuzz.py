"""Whatever a client throws at a socket, it is answered or hung up on, and the
real daemon goes on serving everyone else."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Daemon, start_daemon, stop_daemon

READ_TIMEOUT = 15.0
MAX_LINE = 1024 * 1024
OPS = [
    "ping",
    "whoami",
    "send",
    "recv",
    "ack",
    "nack",
    "status",
    "agents",
    "agent_add",
    "messages",
    "tail",
    "bogus",
    "",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _request(op: str, rid: Any, args: Any) -> bytes:
    if op == "tail":
        op = "ping"  # a stream never ends by itself; its own tests cover it
    if op == "recv" and isinstance(args, dict):
        args = {**args, "wait": 0}  # a long-poll would only make the test slow
    return json.dumps({"id": rid, "op": op, "args": args}).encode()


requests = st.builds(_request, st.sampled_from(OPS), json_values, json_values)
raw_lines = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b""))
broken_json = st.builds(lambda r, cut: r[:cut], requests, st.integers(0, 30))
# Huge lines are drawn as short tags and expanded in the test, so hypothesis
# does not print megabytes when it reports an example.
HUGE = {
    b"<huge raw>": b"x" * (MAX_LINE + 1),
    b"<huge json>": b'{"id":1,"op":"ping","args":{"p":"' + b"y" * MAX_LINE + b'"}}',
}
lines = st.lists(
    st.one_of(requests, raw_lines, broken_json, st.sampled_from(sorted(HUGE))),
    min_size=1,
    max_size=8,
)


@pytest.fixture(scope="module")
def fuzzed_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = Path("/tmp") / f"hhfz{tmp_path_factory.getbasetemp().name[-6:]}"
    running = start_daemon(base / "state", base / "run")
    result = running.cli("agents", "add", "alice")
    assert result.returncode == 0, result.stderr
    try:
        yield running
    finally:
        assert stop_daemon(running) == 0


def exchange(path: Path, payload: bytes) -> tuple[list[dict[str, Any]], bool]:
    """Send ``payload``, close our side, read answers until the core hangs up."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(READ_TIMEOUT)
        sock.connect(str(path))
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the core hung up on an oversized line while we were still writing
        data = b""
        reset = False
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            reset = True
    answers = [json.loads(line) for line in data.splitlines()]
    return answers, reset


def ping(path: Path) -> bool:
    answers, _ = exchange(path, b'{"id":"p","op":"ping"}\n')
    return answers == [{"id": "p", "ok": True, "result": {"pong": True, "version": "0.1.0"}}]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=lines, on_agent_socket=st.booleans())
def test_every_line_is_answered_or_the_connection_closed(
    fuzzed_daemon: Daemon, batch: list[bytes], on_agent_socket: bool
) -> None:
    path = (
        fuzzed_daemon.run_dir / "agents" / "alice" / "mcp.sock"
        if on_agent_socket
        else fuzzed_daemon.host_socket
    )
    batch = [HUGE.get(line, line) for line in batch]
    answers, _ = exchange(path, b"\n".join(batch) + b"\n")
    expected = [line for line in batch if line.strip()]
    for answer in answers:
        assert set(answer) == {"id", "ok", "result"} or set(answer) == {"id", "ok", "error"}
    oversized = next((i for i, line in enumerate(expected) if len(line) >= MAX_LINE), None)
    if oversized is None:
        assert len(answers) == len(expected)
    else:
        # Everything before the oversized line is answered; then one error, then EOF.
        assert len(answers) == oversized + 1
        assert answers[-1]["error"]["code"] == "too_large"
    assert fuzzed_daemon.proc.poll() is None
    assert ping(fuzzed_daemon.host_socket)
