"""Who may talk to a hive web UI (DESIGN §9): loopback by default, else the operator token.

Shared by the agent pages and the dashboard. Three guards:

* listen check: a non-loopback address without a token is refused at start;
* :class:`TokenGate`: with a token, every request needs it (``?token=`` once sets an
  HttpOnly cookie); without one, the Host header must name loopback, because a DNS
  rebinding page would otherwise be "same origin" and could read the CSRF token;
* :func:`csrf_refusal`: state-changing requests must carry the per-app CSRF token in a
  header, which a cross-site form can never set.
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import json
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from hyperhive.errors import ConfigError

CSRF_HEADER = "X-Hive-CSRF"
TOKEN_COOKIE = "hive_token"
PUBLIC_STYLESHEET = "/static/hive.css"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The token may sit in the URL for one request; never leak it to other sites.
    "Referrer-Policy": "no-referrer",
}
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


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
    """Refuse to serve a UI beyond this machine without the operator token."""
    if is_loopback(host):
        return
    if token is None or not token.strip():
        raise ConfigError(
            f"refusing to listen on {host!r} without an operator token: web UIs listen on "
            "127.0.0.1 by default, and any other address requires --token (DESIGN §9)"
        )
    if len(token) < 16:
        raise ConfigError("the operator token is too short: use at least 16 characters")


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_refusal(request: Request, expected: str) -> str | None:
    """Why this state-changing request must be refused, or None when it is same-origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
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


def page_salt(agent: str) -> str:
    return f"agent:{agent}"


def token_digest(token: str, salt: str) -> str:
    return hashlib.sha256(f"hyperhive:{salt}:{token}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """Recognises the operator token from a salted digest of it. An agent page
    holds only the digest for its own salt, so an agent that reads its own
    environment learns nothing it could present to the dashboard."""

    digest: str
    salt: str

    @classmethod
    def of(cls, token: str, salt: str) -> TokenCheck:
        return cls(token_digest(token, salt), salt)

    def matches(self, supplied: str) -> bool:
        return secrets.compare_digest(token_digest(supplied, self.salt), self.digest)


class TokenGate:
    """ASGI middleware enforcing the operator token (or, without one, a loopback Host)."""

    def __init__(
        self, app: ASGIApp, token: str | None = None, check: TokenCheck | None = None
    ) -> None:
        self.app = app
        self.check = check or (TokenCheck.of(token, "dashboard") if token else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.check is None:
            if is_loopback(_host_name(request.headers.get("host", ""))):
                await self.app(scope, receive, send)
            else:
                await _plain(send, 403, "Host not allowed: this UI only answers to loopback names")
            return
        if request.url.path == PUBLIC_STYLESHEET:
            await self.app(scope, receive, send)  # the token form itself wants the look
            return
        supplied = request.query_params.get("token")
        if supplied is not None:
            if not self._matches(supplied):
                await self._refuse(request, send, "wrong token")
            elif request.method in ("GET", "HEAD"):
                await self._set_cookie_and_strip(request, send, supplied)
            else:
                await self.app(scope, receive, send)
            return
        bearer = request.headers.get("authorization", "")
        cookie = request.cookies.get(TOKEN_COOKIE, "")
        if self._matches(cookie) or (
            bearer.lower().startswith("bearer ") and self._matches(bearer[7:].strip())
        ):
            await self.app(scope, receive, send)
        else:
            await self._refuse(request, send, None)

    def _matches(self, supplied: str) -> bool:
        assert self.check is not None
        return self.check.matches(supplied)

    async def _set_cookie_and_strip(self, request: Request, send: Send, token: str) -> None:
        # Redirect so the token leaves the address bar and the browser history at once.
        rest = [(k, v) for k, v in parse_qsl(request.url.query) if k != "token"]
        location = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        cookie = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        headers = [(b"location", location.encode()), (b"set-cookie", cookie.encode())]
        await _send(send, 303, headers, b"")

    async def _refuse(self, request: Request, send: Send, why: str | None) -> None:
        if request.url.path.startswith(("/api/", "/events")) or request.method != "GET":
            body = json.dumps({"ok": False, "message": why or "operator token required"})
            await _send(send, 401, [(b"content-type", b"application/json")], body.encode())
            return
        note = f"<p class=err>{html.escape(why)}</p>" if why else ""
        page = (
            "<!doctype html><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>hyperhive: token</title><link rel=stylesheet href='{PUBLIC_STYLESHEET}'>"
            "<body class=gate><form method=get action=''><h1>hyperhive</h1>"
            f"{note}<label>operator token <input name=token type=password autofocus "
            "autocomplete=current-password></label> <button class=btn>enter</button></form>"
        )
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await _send(send, 401, headers, page.encode())


async def _plain(send: Send, status: int, text: str) -> None:
    await _send(send, status, [(b"content-type", b"text/plain; charset=utf-8")], text.encode())


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})
