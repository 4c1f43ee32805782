"""Request bodies, read bounded: a client that sends too much, or garbage, gets
a clear 400 (``BadInput``) before any handler acts on it."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request


class BadInput(Exception):
    """The request was malformed; answered 400 before anything is called."""


def content_kind(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_text(request: Request, limit: int) -> str:
    """The whole body as UTF-8, refusing anything over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadInput(f"request body too large (limit {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInput(f"request body too large (limit {limit} bytes)")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput("request body is not UTF-8") from exc


def json_object(body: str) -> dict[str, Any]:
    try:
        fields = json.loads(body) if body else {}
    except ValueError as exc:
        raise BadInput("request body is not valid JSON") from exc
    if not isinstance(fields, dict):
        raise BadInput("the JSON body must be an object")
    return fields
