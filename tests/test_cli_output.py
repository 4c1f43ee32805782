"""What the real ``hive`` CLI prints is safe for a terminal: agent-sent text cannot clear
the screen, set the title or write the clipboard (OSC 52), in tables, blocks, streams,
``--json`` and error messages alike."""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon
from hyperhive.cli.render import inline, safe
from hyperhive.client import Client
from support.wire import until_status

CLEAR, OSC52, CSI, DEL = "\x1b[2J", "\x1b]52;c;ZXZpbA==\x07", "\x9b", "\x7f"
EVIL = f"{CLEAR}{OSC52}{CSI}{DEL}!"
SHOWN = ("\\x1b[2J", "\\x1b]52;c;ZXZpbA==\\x07", "\\x9b", "\\x7f")
RAW = (b"\x1b", b"\x07", b"\x7f", CSI.encode())
READ_TIMEOUT = 20.0


def run_cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI's output as bytes, exactly what a terminal would be given."""
    return subprocess.run(
        [sys.executable, "-m", "hyperhive.cli.main", *args],
        env=daemon.env,
        capture_output=True,
        timeout=30,
        check=False,
    )


def assert_terminal_safe(output: bytes) -> None:
    for raw in RAW:
        assert raw not in output, (raw, output[:400])


def assert_shown_escaped(output: bytes) -> None:
    assert_terminal_safe(output)
    text = output.decode()
    for shown in SHOWN:
        assert shown in text, (shown, text[:400])


async def agent_call(path: Path, op: str, **args: Any) -> Any:
    async with await Client.connect(path) as client:
        return await client.call(op, **args)


@pytest.fixture
def evil(daemon: Daemon) -> dict[str, Any]:
    """An agent's message and a manager's question, both full of control sequences."""
    assert run_cli(daemon, "agents", "add", "alice").returncode == 0
    assert run_cli(daemon, "agents", "add", "hm1nd").returncode == 0
    alice = daemon.run_dir / "agents" / "alice" / "mcp.sock"
    manager = daemon.run_dir / "manager" / "mcp.sock"
    sent = asyncio.run(agent_call(alice, "send", to="operator", body=f"{EVIL}\nsecond line"))
    asked = asyncio.run(
        agent_call(manager, "ask_operator", question=EVIL, options=[f"yes{CLEAR}", "no"])
    )
    return {"message": sent, "question": asked}


def test_the_sanitiser_escapes_c0_del_and_c1_and_keeps_a_blocks_newlines_and_tabs() -> None:
    assert safe("a\tb\nc\x1b[2J\r\x00\x7f\x85\x9b") == "a\tb\nc\\x1b[2J\\r\\x00\\x7f\\x85\\x9b"
    assert inline("a\tb\nc") == "a\\tb\\nc"
    assert safe("caf\u00e9 \u2192 ok") == "caf\u00e9 \u2192 ok"
    assert safe("\u202eevil") == "\\u202eevil"


def test_messages_and_message_show_an_agents_control_characters_escaped(
    daemon: Daemon, evil: dict[str, Any]
) -> None:
    listed = run_cli(daemon, "messages")
    assert listed.returncode == 0
    assert_shown_escaped(listed.stdout)
    assert b"\\nsecond line" in listed.stdout  # a table row stays one row
    whole = run_cli(daemon, "message", str(evil["message"]["id"]))
    assert whole.returncode == 0
    assert_shown_escaped(whole.stdout)
    assert whole.stdout.decode().endswith("!\nsecond line\n")  # a block keeps its lines


def test_questions_show_the_askers_control_characters_escaped(
    daemon: Daemon, evil: dict[str, Any]
) -> None:
    listed = run_cli(daemon, "questions")
    assert listed.returncode == 0
    assert_shown_escaped(listed.stdout)
    assert b"yes\\x1b[2J" in listed.stdout


@pytest.mark.parametrize("command", ["messages", "questions", "message"])
def test_json_output_has_no_raw_control_bytes_and_decodes_to_the_same_text(
    daemon: Daemon, evil: dict[str, Any], command: str
) -> None:
    extra = [str(evil["message"]["id"])] if command == "message" else []
    done = run_cli(daemon, command, *extra, "--json")
    assert done.returncode == 0
    assert_terminal_safe(done.stdout)
    answer = json.loads(done.stdout)
    if command == "messages":
        texts = [m["body"] for m in answer]
    elif command == "questions":
        texts = [q["question"] for q in answer["pending"]]
    else:
        texts = [answer["body"]]
    assert any(t.startswith(EVIL) for t in texts), texts


@pytest.mark.parametrize("as_json", [False, True])
def test_tail_shows_bodies_escaped(daemon: Daemon, as_json: bool) -> None:
    assert run_cli(daemon, "agents", "add", "alice").returncode == 0
    tail = subprocess.Popen(
        [sys.executable, "-m", "hyperhive.cli.main", "tail", *(["--json"] if as_json else [])],
        env=daemon.env,
        stdout=subprocess.PIPE,
    )
    try:
        asyncio.run(until_status(daemon.host_socket, lambda s: s["subscribers"] == 1))
        alice = daemon.run_dir / "agents" / "alice" / "mcp.sock"
        asyncio.run(agent_call(alice, "send", to="operator", body=f"{EVIL}\nsecond line"))
        assert tail.stdout is not None
        readable, _, _ = select.select([tail.stdout], [], [], READ_TIMEOUT)
        assert readable, "tail printed nothing"
        line = tail.stdout.readline()
    finally:
        tail.terminate()
        tail.wait(timeout=10)
    assert_terminal_safe(line)
    if as_json:
        assert json.loads(line)["message"]["body"] == f"{EVIL}\nsecond line"
    else:
        assert_shown_escaped(line)
        assert line.endswith(b"\\nsecond line\n")  # one event, one line


def test_error_messages_on_stderr_are_escaped_too(daemon: Daemon) -> None:
    done = run_cli(daemon, "destroy", f"x{CLEAR}{OSC52}")
    assert done.returncode == 1
    assert_terminal_safe(done.stderr)
    assert b"x\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07" in done.stderr
