"""A request's body, fields and parameters, read as op arguments for both web apps.

Everything is checked before any handler acts, and every problem is a
:class:`~hyperhive.errors.BadRequest`: a 400 that changed nothing, from one place.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.requests import Request

from hyperhive.errors import BadRequest

JSON: Final = "application/json"
FORM: Final = "application/x-www-form-urlencoded"
MAX_DIGITS: Final = 18  # an id or a count fits in SQLite's integer long before this


def content_kind(request: Request) -> str:
    return media_type(request.headers.get("content-type", ""))


def media_type(header: str) -> str:
    """A Content-Type header's type alone: ``application/json; charset=utf-8`` → json's."""
    return header.split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing anything over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"request body too large (limit {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_text(request: Request, limit: int) -> str:
    """The whole body as UTF-8, refusing anything over ``limit`` bytes."""
    body = await read_body(request, limit)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not UTF-8") from exc


def json_object(body: str) -> dict[str, Any]:
    try:
        fields = json.loads(body) if body else {}
    except ValueError as exc:
        raise BadRequest("request body is not valid JSON") from exc
    if not isinstance(fields, dict):
        raise BadRequest("the JSON body must be an object")
    return fields


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object body of a request, bounded in size."""
    if content_kind(request) != JSON:
        raise BadRequest(f"send the fields as {JSON}")
    return json_object(await read_text(request, limit))


async def read_fields(request: Request, limit: int) -> dict[str, Any]:
    """The fields of a JSON object body or of a plain HTML form, bounded in size."""
    body = await read_text(request, limit)
    kind = content_kind(request)
    if kind == JSON:
        return json_object(body)
    if kind == FORM:
        return dict(parse_qsl(body, keep_blank_values=True))
    raise BadRequest(f"send {JSON} or {FORM}")


def only(fields: dict[str, Any], *allowed: str) -> None:
    """Refuse unknown fields, as the sockets do: a typo must not be silently ignored."""
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")


def text_field(fields: dict[str, Any], name: str, default: str | None = None) -> str:
    """A text field; without a ``default``, a required one."""
    if name not in fields and default is None:
        raise BadRequest(f"missing field {name!r}")
    value = fields.get(name, default)
    if not isinstance(value, str):
        raise BadRequest(f"field {name!r} must be a string")
    return value


def bounded_text(fields: dict[str, Any], name: str, max_bytes: int, *, strip: bool) -> str:
    """A required, non-blank text field of at most ``max_bytes``, without NUL characters;
    ``strip``: without its surrounding whitespace (pasted keys often carry a newline)."""
    value = text_field(fields, name)
    if strip:
        value = value.strip()
    if not value.strip():
        raise BadRequest(f"field {name!r} is empty")
    if len(value.encode("utf-8")) > max_bytes:
        raise BadRequest(f"field {name!r} is over {max_bytes // 1024} KiB")
    if "\x00" in value:
        raise BadRequest(f"field {name!r} contains a NUL character")
    return value


def flag_field(fields: dict[str, Any], name: str) -> bool:
    value = fields.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"field {name!r} must be true or false")
    return value


def int_param(raw: str | None, name: str, low: int, high: int | None = None) -> int | None:
    """An integer query or path parameter in ``[low, high]``; None if absent or empty."""
    if raw is None or raw == "":
        return None
    fits = raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS
    if not fits or int(raw) < low or (high is not None and int(raw) > high):
        upto = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise BadRequest(f"{name} must be an integer {upto}")
    return int(raw)


def path_id(raw: str, what: str) -> int:
    """A row id from the URL path."""
    value = int_param(raw, what, 1, 2**62)
    if value is None:
        raise BadRequest(f"missing {what}")
    return value
