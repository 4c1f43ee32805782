"""Links into the dashboard from another site, such as an agent's page asking the operator
to decide one of its approvals (``/?approval=7``), or a bookmark of an agent's page behind the
front door (``/agents/<name>/``).

The session cookie is SameSite=Strict, so a browser withholds it from a navigation another
site started, and the operator would meet the token form although they are logged in. A
page GET that comes from another site without the cookie is answered with a refresh to the
same address instead: that refresh is this origin's own navigation, so the cookie goes with
it. It carries nothing but the path and query asked for, and the token gate still decides
the refreshed request; anything else (the API, posts, same-origin requests) passes untouched.
"""

from __future__ import annotations

import html
import re
from http.cookies import CookieError, SimpleCookie
from typing import Final
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from hyperhive.web.security import GATE_CSP, SECURITY_HEADERS, SESSION_COOKIE

# The dashboard, and each agent's page behind the front door (/agents/<name>/).
PAGES: Final = re.compile(r"/(agents/[a-z][a-z0-9-]{0,8}/)?")
_FROM_ELSEWHERE: Final = (b"cross-site", b"same-site")


class CrossSiteBounce:
    def __init__(self, app: ASGIApp, *, cookie: str = SESSION_COOKIE) -> None:
        self.app = app
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._bounces(scope):
            await self.app(scope, receive, send)
            return
        # The query as sent (already %-encoded); quote() only guards against stray bytes.
        query = quote(scope["query_string"].decode("latin-1"), safe="&=%:+,;@/")
        target = scope["path"] + (f"?{query}" if query else "")
        page = f"<!doctype html><meta http-equiv=refresh content='0;url={html.escape(target)}'>"
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"content-security-policy", GATE_CSP.encode()),
            *((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": page.encode()})

    def _bounces(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "GET":
            return False
        if not PAGES.fullmatch(scope["path"]):
            return False
        headers = dict(scope["headers"])
        if headers.get(b"sec-fetch-site") not in _FROM_ELSEWHERE:
            return False
        if headers.get(b"sec-fetch-mode") != b"navigate" or b"token=" in scope["query_string"]:
            return False  # a login link does its own dance in the token gate
        return not self._has_cookie(headers.get(b"cookie", b""))

    def _has_cookie(self, raw: bytes) -> bool:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw.decode("latin-1"))
        except CookieError:
            return False
        return self.cookie in jar
