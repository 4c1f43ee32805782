"""Bus events into notifications, by table: which events tell the operator, what each
says, where its link lands, and that ``data`` carries the exact request."""

from __future__ import annotations

from email.header import decode_header
from typing import Any

import pytest

from hyperhive.core.notify.events import TITLE_MAX, Notification, Translator
from hyperhive.core.notify.sinks import header_text
from hyperhive.settings import NOTIFY_EVENTS

TOOL_INPUT = {"command": "rm -rf /work/build", "description": "clean"}


def approval(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "kind": kind,
        "agent": "bob",
        "requester": "hm1nd" if kind != "tool_use" else "bob",
        "reason": "needed",
        "sha": None,
        "config": None,
        "tool": None,
        "input": None,
        "input_json": None,
        "state": "pending",
        **extra,
    }


def one(event: dict[str, Any]) -> Notification | None:
    return Translator().translate(event)


@pytest.mark.parametrize(
    ("event", "kind", "title", "link", "data"),
    [
        (
            {
                "type": "approval_requested",
                "approval": approval(
                    "tool_use",
                    tool="Bash",
                    input=TOOL_INPUT,
                    input_json='{"command":"rm -rf /work/build","description":"clean"}',
                ),
            },
            "approval",
            "bob asks to use Bash",
            "/#approval-7",
            {
                "kind": "tool_use",
                "tool": "Bash",
                "input": TOOL_INPUT,
                "input_json": '{"command":"rm -rf /work/build","description":"clean"}',
                "requester": "bob",
                "reason": "needed",
            },
        ),
        (
            {
                "type": "approval_requested",
                "approval": approval("spawn", config='role = "tester"\n'),
            },
            "approval",
            "hm1nd asks to spawn bob",
            "/#approval-7",
            {"kind": "spawn", "agent": "bob", "config": 'role = "tester"\n'},
        ),
        (
            {
                "type": "approval_requested",
                "approval": approval("apply_commit", sha="ab" * 20),
                "diffstat": {
                    "files": [{"path": "agent.toml", "added": 1, "removed": 0}],
                    "added": 1,
                    "removed": 0,
                },
            },
            "approval",
            "hm1nd asks to change bob's config",
            "/#approval-7",
            {"kind": "apply_commit", "sha": "ab" * 20, "diffstat": {"added": 1}},
        ),
        (
            {
                "type": "question_asked",
                "question": {"id": 3, "asker": "hm1nd", "question": "ship?", "options": ["y", "n"]},
            },
            "question",
            "hm1nd asks you a question",
            "/#question-3",
            {"id": 3, "question": "ship?", "options": ["y", "n"]},
        ),
        (
            {"type": "agent_state", "agent": "bob", "state": "failed", "last_error": "exit 1"},
            "failed",
            "bob failed",
            "/#agent-row-bob",
            {"agent": "bob", "last_error": "exit 1"},
        ),
        (
            {"type": "budget", "agent": "bob", "state": "paused", "text": "bob spent $5"},
            "budget",
            "budget paused: bob",
            "/#spend",
            {"agent": "bob", "state": "paused", "text": "bob spent $5"},
        ),
        (
            {"type": "budget", "agent": None, "state": "warn", "text": "80% of the day"},
            "budget",
            "budget warn: the hive",
            "/#spend",
            {"state": "warn"},
        ),
        (
            {
                "type": "stall",
                "what": "approval",
                "agent": "bob",
                "id": 7,
                "since": 1.0,
                "seconds": 3600.0,
                "text": "approval #7 has waited an hour",
            },
            "stall",
            "stalled approval: bob",
            "/#approval-7",
            {"what": "approval", "id": 7, "seconds": 3600.0},
        ),
        (
            {"type": "stall", "what": "thinking", "agent": "bob", "id": None, "text": "quiet"},
            "stall",
            "stalled thinking: bob",
            "/#agent-row-bob",
            {"what": "thinking"},
        ),
        (
            {"type": "stall", "what": "question", "agent": None, "id": 3, "text": "unanswered"},
            "stall",
            "stalled question: the hive",
            "/#question-3",
            {"id": 3},
        ),
    ],
)
def test_each_event_the_operator_must_hear_of_becomes_one_notification(
    event: dict[str, Any], kind: str, title: str, link: str, data: dict[str, Any]
) -> None:
    note = one(event)
    assert note is not None
    assert (note.kind, note.title, note.link) == (kind, title, link)
    assert note.kind in NOTIFY_EVENTS and 1 <= note.priority <= 5 and note.tags
    for key, value in data.items():
        if isinstance(value, dict) and key == "diffstat":
            assert note.data[key]["added"] == value["added"]
        else:
            assert note.data[key] == value, key
    assert Notification.from_wire(note.to_wire()) == note


@pytest.mark.parametrize(
    "event",
    [
        {"type": "approval_requested", "auto": "safe reads", "approval": approval("tool_use")},
        {"type": "approval_decided", "approval": approval("spawn")},
        {"type": "question_answered", "question": {"id": 3}},
        {"type": "agent_state", "agent": "bob", "state": "running"},
        {"type": "budget", "agent": "bob", "state": "ok", "text": "back under"},
        {"type": "stall_cleared", "what": "thinking", "agent": "bob"},
        {"type": "message", "message": {"from": "a", "to": "b"}},
        {"type": "approval_requested", "approval": "not a dict"},
        {"type": "approval_requested", "approval": approval("reboot")},
        {},
    ],
)
def test_events_a_policy_decided_or_that_ask_nothing_are_not_sent(event: dict[str, Any]) -> None:
    assert one(event) is None


def test_a_failed_agent_is_told_once_until_it_leaves_the_failed_state() -> None:
    translator = Translator()
    failed = {"type": "agent_state", "agent": "bob", "state": "failed", "last_error": "x"}
    assert translator.translate(failed) is not None
    assert translator.translate(dict(failed, restarts=3)) is None  # an update, still failed
    assert translator.translate({"type": "agent_state", "agent": "bob", "state": "running"}) is None
    assert translator.translate(failed) is not None


def test_an_approval_body_shows_the_diffstat_and_the_exact_input() -> None:
    stat = {"files": [{"path": "agent.toml", "added": 2, "removed": 1}], "added": 2, "removed": 1}
    note = one(
        {
            "type": "approval_requested",
            "approval": approval("apply_commit", sha="c0ffee" * 6),
            "diffstat": stat,
        }
    )
    assert note is not None and "agent.toml +2 -1" in note.body and "c0ffee" in note.body
    assert note.data["diffstat"] == stat


def test_a_title_is_one_bounded_line_whatever_an_agent_put_in_it() -> None:
    tool = "Bash\r\nX-Injected: yes" + "x" * 500
    note = one({"type": "approval_requested", "approval": approval("tool_use", tool=tool)})
    assert note is not None
    assert "\r" not in note.title and "\n" not in note.title and len(note.title) <= TITLE_MAX
    assert note.data["tool"] == tool  # the exact request stays in data


def test_a_non_ascii_title_reaches_ntfy_as_an_rfc_2047_word_and_decodes_back() -> None:
    assert header_text("bob asks to use Bash") == "bob asks to use Bash"
    encoded = header_text("bob fragt: Größe ändern? ✓")
    assert encoded.isascii() and encoded.startswith("=?utf-8?b?")
    [(raw, charset)] = decode_header(encoded)
    assert isinstance(raw, bytes) and raw.decode(charset or "ascii") == "bob fragt: Größe ändern? ✓"
