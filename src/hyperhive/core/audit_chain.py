"""The audit log's hash chain as pure code: how an entry is hashed, how a walk over the
stored entries finds the first bad one, and how big a detail may be.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the canonical JSON of
``[id, at, actor, via, action, agent, detail]`` (``detail`` as the exact JSON text kept);
the first entry's ``prev`` is :data:`GENESIS`. A walk in id order then finds:

- an edited entry: its hash is not the hash of its content;
- a removed entry: the ids skip, or the next one's ``prev`` is not the hash before it;
- two swapped entries: the first of them no longer follows the entry before it.

Removing the *last* entries leaves a shorter chain that is still whole, so the head
(count, last id, last hash) is kept outside the database too (core/audit.py) and the walk
ends by comparing it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

GENESIS: Final = "0" * 64
# A detail is a record, not a copy: big values are cut to a preview and their hash.
MAX_VALUE: Final = 512
PREVIEW: Final = 200
MAX_DETAIL: Final = 8192
MAX_DEPTH: Final = 6


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    via: str
    action: str
    agent: str | None
    detail: str  # canonical JSON text
    prev: str
    hash: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "via": self.via,
            "action": self.action,
            "agent": self.agent,
            "detail": json.loads(self.detail),
            "prev": self.prev,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class Head:
    """The chain's end as last written: how many entries, the last one's id and hash."""

    count: int
    last_id: int
    last_hash: str

    def to_text(self) -> str:
        return json.dumps({"count": self.count, "last_id": self.last_id, "hash": self.last_hash})

    @classmethod
    def from_text(cls, text: str) -> Head | None:
        """The head in ``text``, or None if it is not one."""
        try:
            data = json.loads(text)
            head = cls(int(data["count"]), int(data["last_id"]), str(data["hash"]))
        except (ValueError, TypeError, KeyError):
            return None
        return head


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    count: int
    first_bad: int | None = None
    reason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "count": self.count,
            "first_bad": self.first_bad,
            "reason": self.reason,
        }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev: str, id: int, at: float, actor: str, via: str, action: str, agent: str | None, detail: str
) -> str:
    body = canonical([id, at, actor, via, action, agent, detail])
    return hashlib.sha256((prev + body).encode()).hexdigest()


def seal(
    prev: str, id: int, at: float, actor: str, via: str, action: str, agent: str | None,
    detail: dict[str, Any],
) -> AuditEntry:  # fmt: skip
    """The entry after ``prev`` with this content, hashed."""
    at = float(at)  # as the REAL column gives it back: 5 and 5.0 hash apart
    text = canonical(bound_detail(detail))
    digest = entry_hash(prev, id, at, actor, via, action, agent, text)
    return AuditEntry(id, at, actor, via, action, agent, text, prev, digest)


class ChainWalker:
    """Fed the stored entries in id order, with the head kept outside the database
    (None: there is none, ``head_missing`` says whether it is absent or unreadable);
    stops at the first bad entry."""

    def __init__(self, head: Head | None, *, head_missing: bool = False) -> None:
        self.head = head
        self.head_missing = head_missing
        self.count = 0
        self.last_id = 0
        self.last_hash = GENESIS
        self.bad: VerifyResult | None = None

    def feed(self, entry: AuditEntry) -> bool:
        """Check one more entry; False once the chain is broken (stop feeding)."""
        if self.bad is not None:
            return False
        expected = self.last_id + 1
        if entry.id != expected:
            gone = f"#{expected}" if entry.id == expected + 1 else f"#{expected}-#{entry.id - 1}"
            return self._break(entry.id, f"entries before it are missing ({gone})")
        if entry.prev != self.last_hash:
            where = "the start" if self.last_id == 0 else f"entry #{self.last_id}"
            return self._break(entry.id, f"its prev is not the hash of {where}: moved or replaced")
        fields = (entry.id, entry.at, entry.actor, entry.via, entry.action, entry.agent)
        if entry_hash(entry.prev, *fields, entry.detail) != entry.hash:
            return self._break(entry.id, "its content does not match its hash: edited")
        self.count += 1
        self.last_id, self.last_hash = entry.id, entry.hash
        head = self.head
        if head is not None and entry.id == head.last_id and not self._ends_at(head):
            return self._break(entry.id, "it is not the entry audit.head keeps: rewritten")
        return True

    def _ends_at(self, head: Head) -> bool:
        return self.last_hash == head.last_hash and self.count == head.count

    def _break(self, entry_id: int, reason: str) -> bool:
        self.bad = VerifyResult(False, self.count, entry_id, f"entry #{entry_id}: {reason}")
        return False

    def finish(self) -> VerifyResult:
        """The verdict once every entry was fed."""
        if self.bad is not None:
            return self.bad
        head = self.head
        if head is None:
            if self.count == 0:
                return VerifyResult(True, 0)
            why = "missing" if self.head_missing else "not readable"
            return VerifyResult(
                False, self.count, None, f"audit.head is {why}, but the log has entries"
            )
        if head.last_id > self.last_id:
            gone = self.last_id + 1
            return VerifyResult(
                False,
                self.count,
                gone,
                f"entry #{gone}: removed (audit.head says the log ends at #{head.last_id})",
            )
        # Entries past the head are whole chain links: one appended just before a crash
        # had no time to write the head.
        return VerifyResult(True, self.count)


def bound_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """``detail`` with every long string cut to a preview and its SHA-256, and the whole
    cut the same way if it is still too big."""
    bounded = _bound(detail, 0)
    assert isinstance(bounded, dict)
    text = canonical(bounded)
    if len(text) <= MAX_DETAIL:
        return bounded
    return {"cut": _cut(text)}


def _bound(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE else _cut(value)
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return _cut(canonical(value))
        return {str(k): _bound(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return _cut(canonical(list(value)))
        return [_bound(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _bound(str(value), depth)


def _cut(text: str) -> dict[str, Any]:
    return {
        "preview": text[:PREVIEW],
        "length": len(text),
        "sha256": hashlib.sha256(text.encode(errors="replace")).hexdigest(),
    }
