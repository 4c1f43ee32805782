"""Who may talk to a hive web UI (DESIGN §9): the operator token, always, and sessions.

Shared by the dashboard and the agent pages. The guards:

* :class:`TokenGate`: every request carries a session cookie or ``Authorization: Bearer``;
  a valid ``?token=`` on a GET trades the secret for a random session id (HttpOnly,
  SameSite=Strict), so the browser never holds the secret itself. On loopback the Host header
  must name loopback too, so a DNS-rebinding page never counts as this origin.
* :func:`csrf_refusal`: state-changing requests must carry the per-app CSRF token in a
  header, which no other site's form or script can set, and must not come from another
  origin (``Sec-Fetch-Site``), not even another port of this host.
* :func:`agent_page_host`: the dashboard links to agent pages under the other loopback name,
  so its session cookie never reaches a port an agent listens on.
"""

from __future__ import annotations

import html
import ipaddress
import json
import secrets
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from hyperhive.errors import ConfigError
from hyperhive.tokens import KeyCheck, check_token
from hyperhive.web.sessions import SessionStore

CSRF_HEADER: Final = "X-Hive-CSRF"
SESSION_COOKIE: Final = "hive_session"
PUBLIC_STYLESHEET: Final = "/static/hive.css"

SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # A key may sit in the URL for one request; never leak it to other sites.
    "Referrer-Policy": "no-referrer",
}
PAGE_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
GATE_CSP: Final = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
# What the front door relays from an agent's harness is data, never a document: should a
# browser render it anyway, it runs nothing and loads nothing, in an opaque origin.
RELAY_CSP: Final = "default-src 'none'; sandbox"
# Where a login may answer with a plain redirect: typed or pasted URLs, and scripts.
_DIRECT: Final = (None, "none", "same-origin")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``127.0.0.0/8``, ``::1``, localhost)."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_listen(host: str, token: str | None) -> None:
    """Refuse a short token anywhere, and a UI beyond this machine without one."""
    if token is not None:
        check_token(token)
    elif not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host!r} without an operator token: web UIs listen on "
            "127.0.0.1 by default, and any other address requires one (DESIGN §9)"
        )


def agent_page_host(viewed: str) -> str:
    """The host name the dashboard, viewed as ``viewed``, uses in links to agent pages.

    Cookies are scoped by host name, never by port: the dashboard's session cookie for
    127.0.0.1 would go to every 127.0.0.1 port the browser visits, agents' pages and any
    listener an agent binds included. So a dashboard viewed on 127.0.0.1 links agent pages
    as ``localhost`` and one viewed on ``localhost`` links them as 127.0.0.1: following
    those links never hands the dashboard's cookie to a port an agent listens on. (Off
    loopback agent pages are not reachable by default, and the name is kept.)
    """
    name = viewed.strip().lower()
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if bare == "localhost" or bare.endswith(".localhost"):
        return "127.0.0.1"
    if is_loopback(bare):
        return "localhost"
    return viewed


def page_cookie(agent: str) -> str:
    """An agent page's session cookie, named per agent so that it never overwrites the
    dashboard's (or another agent's) on the same host name."""
    return f"hive_page_{agent}"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_refusal(request: Request, expected: str) -> str | None:
    """Why this state-changing request must be refused, or None when it is same-origin.

    ``same-site`` is refused as well as ``cross-site``: another port of this host (an agent's
    page, or a listener an agent binds) is the same site but never the same origin.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-origin request refused (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        return "cross-origin request refused (Origin does not match Host)"
    supplied = request.headers.get(CSRF_HEADER, "")
    if not secrets.compare_digest(supplied.encode(), expected.encode()):
        return f"missing or wrong {CSRF_HEADER} header (reload the page)"
    return None


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0]


class TokenGate:
    """ASGI middleware: a session (or the secret as a Bearer) for every request.

    ``check`` recognises the secret (the operator token on the dashboard, the agent's page
    key on its page); ``sessions`` holds the sessions it handed out under ``cookie``;
    ``loopback``: the UI listens on loopback, so the Host header must name loopback too.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        check: KeyCheck,
        sessions: SessionStore,
        cookie: str = SESSION_COOKIE,
        loopback: bool = True,
        label: str = "operator token",
    ) -> None:
        self.app = app
        self.check = check
        self.sessions = sessions
        self.cookie = cookie
        self.loopback = loopback
        self.label = label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope)
        if self.loopback and not is_loopback(_host_name(request.headers.get("host", ""))):
            await _plain(send, 403, "Host not allowed: this UI only answers to loopback names")
            return
        if request.url.path == PUBLIC_STYLESHEET:
            await self.app(scope, receive, send)  # the token form itself wants the look
            return
        supplied = request.query_params.get("token")
        if supplied is not None:
            await self._login(request, send, supplied)
            return
        bearer = request.headers.get("authorization", "")
        if bearer:
            scheme, _, secret = bearer.partition(" ")
            if scheme.lower() == "bearer" and self.check.matches(secret.strip()):
                await self.app(scope, receive, send)
            else:
                await self._refuse(request, send, f"wrong {self.label}")
            return
        session = request.cookies.get(self.cookie)
        if session is not None and self.sessions.valid(session):
            await self.app(scope, receive, send)
        elif session is not None:
            await self._refuse(request, send, "this session is over: log in again")
        else:
            await self._refuse(request, send, None)

    async def _login(self, request: Request, send: Send, supplied: str) -> None:
        if request.method not in ("GET", "HEAD"):
            await self._refuse(request, send, "log in with a GET, or send Authorization: Bearer")
            return
        if not self.check.matches(supplied):
            await self._refuse(request, send, f"wrong {self.label}")
            return
        cookie = f"{self.cookie}={self.sessions.create()}; Path=/; HttpOnly; SameSite=Strict"
        # Always a path of this origin: "//evil.example/?token=…" must not redirect there.
        rest = [(k, v) for k, v in parse_qsl(request.url.query) if k != "token"]
        location = "/" + quote(request.url.path.lstrip("/"))
        location += f"?{urlencode(rest)}" if rest else ""
        headers = [(b"set-cookie", cookie.encode()), (b"cache-control", b"no-store")]
        if request.headers.get("sec-fetch-site") in _DIRECT:
            # The secret leaves the address bar and the history at once.
            await _send(send, 303, [(b"location", location.encode()), *headers], b"")
            return
        # Followed from another site (the dashboard's link to an agent page is one: the
        # other loopback name), a redirect would still be that site's navigation, and the
        # browser would withhold the SameSite=Strict cookie from it. A refresh from this
        # page is this origin's own navigation, so the cookie goes with it.
        page = f"<!doctype html><meta http-equiv=refresh content='0;url={html.escape(location)}'>"
        headers += [(b"content-type", b"text/html; charset=utf-8")]
        await _send(send, 200, headers, page.encode())

    async def _refuse(self, request: Request, send: Send, why: str | None) -> None:
        if request.url.path.startswith(("/api/", "/events", "/metrics")) or request.method != "GET":
            body = json.dumps({"ok": False, "message": why or f"{self.label} required"})
            await _send(send, 401, [(b"content-type", b"application/json")], body.encode())
            return
        note = f"<p class=err>{html.escape(why)}</p>" if why else ""
        page = (
            "<!doctype html><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>hyperhive: log in</title><link rel=stylesheet href='{PUBLIC_STYLESHEET}'>"
            "<body class=gate><form method=get action=''><h1>hyperhive</h1>"
            f"{note}<label>{html.escape(self.label)} <input name=token type=password autofocus "
            "autocomplete=current-password></label> <button class=btn>enter</button></form>"
        )
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await _send(send, 401, headers, page.encode())


async def _plain(send: Send, status: int, text: str) -> None:
    await _send(send, status, [(b"content-type", b"text/plain; charset=utf-8")], text.encode())


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    extra.append((b"content-security-policy", GATE_CSP.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})
