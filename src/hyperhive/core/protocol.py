"""The JSON-lines wire protocol (DESIGN §7), as plain functions.

One request per line: ``{"id": 7, "op": "send", "args": {...}}``; one answer
per request, in order: ``{"id": 7, "ok": true, "result": ...}`` or
``{"id": 7, "ok": false, "error": {"code": ..., "message": ...}}``. Streams
(``tail``) answer with many ``{"id": 7, "ok": true, "event": ...}`` lines.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

from hyperhive.errors import BadRequest, HiveError

RequestId = str | int | None
# Integers past 2**53 lose precision in JavaScript (the dashboard) and many JSON libraries.
MAX_INT_ID: Final = 2**53
MAX_STR_ID: Final = 128


@dataclass(frozen=True, slots=True)
class Request:
    id: RequestId
    op: str
    args: Args


class Args:
    """A request's arguments, read with their types checked and strays refused."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._seen: set[str] = set()

    def _get(self, key: str) -> Any:
        self._seen.add(key)
        return self._raw.get(key)

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, str):
            raise BadRequest(f"argument {key!r} must be a string")
        return value

    def opt_text(self, key: str) -> str | None:
        return None if self._get(key) is None else self.text(key)

    def given(self, key: str) -> bool:
        """Whether ``key`` was sent at all (``null`` included): for ops where an absent
        argument keeps a value and ``null`` clears it."""
        return key in self._raw

    def raw(self, key: str) -> Any:
        """The value as sent; for checks that give a domain-specific error."""
        return self._get(key)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"argument {key!r} must be a number")
        if not math.isfinite(value):
            raise BadRequest(f"argument {key!r} must be a number")
        if not low <= value <= high:
            raise BadRequest(f"argument {key!r} must be between {low:g} and {high:g}")
        return float(value)

    def integer(self, key: str, default: int | None, low: int, high: int) -> int:
        """``default=None`` makes the argument required."""
        value = self._get(key)
        if value is None:
            if default is None:
                raise BadRequest(f"argument {key!r} is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"argument {key!r} must be an integer")
        if not low <= value <= high:
            raise BadRequest(f"argument {key!r} must be between {low} and {high}")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise BadRequest(f"argument {key!r} must be true or false")
        return value

    def text_list(self, key: str) -> list[str] | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"argument {key!r} must be a list of strings")
        return value

    def finish(self) -> None:
        """Refuse arguments the op did not read: a typo must not pass silently."""
        extra = sorted(set(self._raw) - self._seen)
        if extra:
            raise BadRequest(f"unexpected argument(s): {', '.join(map(repr, extra))}")


def parse_request(line: bytes) -> Request:
    """Decode one line; raises :class:`BadRequest` carrying the id when it can be read."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        # ValueError covers undecodable bytes and integers past Python's digit limit
        # as well as JSONDecodeError.
        raise BadRequest(f"malformed JSON: {_shorten(str(exc))}") from None
    if not isinstance(data, dict):
        raise BadRequest("a request must be a JSON object")
    rid = _request_id(data.get("id"))
    op = data.get("op")
    if not isinstance(op, str):
        raise RequestError(rid, BadRequest("'op' must be a string"))
    args = data.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise RequestError(rid, BadRequest("'args' must be an object"))
    extra = set(data) - {"id", "op", "args"}
    if extra:
        raise RequestError(rid, BadRequest(f"unexpected field(s): {', '.join(sorted(extra))}"))
    return Request(rid, op, Args(args))


def _request_id(rid: object) -> RequestId:
    """The id if it is one a client can match its answer by, exactly, in any language."""
    if rid is None:
        return None
    if isinstance(rid, int) and not isinstance(rid, bool):
        if abs(rid) > MAX_INT_ID:
            raise BadRequest("an integer 'id' must be within ±2**53")
        return rid
    if isinstance(rid, str):
        if len(rid) > MAX_STR_ID:
            raise BadRequest(f"a string 'id' must be at most {MAX_STR_ID} characters")
        return rid
    raise BadRequest("'id' must be a string, an integer or null")


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RequestError(Exception):
    """A request that failed to parse but whose id is known, so the answer can carry it."""

    def __init__(self, request_id: RequestId, error: HiveError) -> None:
        super().__init__(error.message)
        self.request_id = request_id
        self.error = error


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def ok(request_id: RequestId, result: Any) -> bytes:
    return encode({"id": request_id, "ok": True, "result": result})


def stream_item(request_id: RequestId, event: Any) -> bytes:
    return encode({"id": request_id, "ok": True, "event": event})


def error(request_id: RequestId, err: HiveError) -> bytes:
    return encode({"id": request_id, "ok": False, "error": err.to_wire()})
