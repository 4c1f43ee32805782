"""The dashboard's JSON answers: ``{ok, message[, code]}``, and the HiveError tree as statuses."""

from __future__ import annotations

from typing import Any, Final

from starlette.responses import JSONResponse

from hyperhive.errors import ClientError, HiveError

NO_STORE: Final = {"Cache-Control": "no-store"}


def answer(ok: bool, message: str, status: int, code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": ok, "message": message}
    if code is not None:
        body["code"] = code
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def refused(exc: HiveError) -> JSONResponse:
    """A request the hive refused or could not do, with the reason verbatim: the caller's
    mistake is a 400; no container backend a 409; anything else the hive's own 500."""
    if isinstance(exc, ClientError):
        return answer(False, exc.message, 400, exc.code)
    status = 409 if exc.code == "no_containers" else 500
    return answer(False, exc.message, status, exc.code)


def view(data: Any) -> JSONResponse:
    """A GET view: always fresh, never from a cache."""
    return JSONResponse(data, headers=NO_STORE)
