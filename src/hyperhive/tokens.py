"""The operator token and the keys derived from it (DESIGN §9); shared by core, agents and web.

* The **operator token** opens the dashboard. Only the core and the operator hold it.
* A **page key**, ``HMAC-SHA256(token, "page:<name>")``, opens one agent's page. The
  dashboard's link to that page carries it, so the agent's process (which an agent with a
  shell could replace) only ever sees a key good for its own page.
* The agent's environment holds only :func:`key_digest` of its page key: reading it gives
  nothing that opens any page, the dashboard least of all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from hyperhive.errors import ConfigError

MIN_TOKEN_CHARS: Final = 16
DIGEST_CHARS: Final = 64


def new_secret() -> str:
    """A fresh random secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def check_token(token: str, where: str = "the operator token") -> str:
    """``token`` without surrounding blanks, if it is long enough; the error never repeats it."""
    stripped = token.strip()
    if len(stripped) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{where} is too short: use at least {MIN_TOKEN_CHARS} characters")
    return stripped


def page_key(token: str, agent: str) -> str:
    """The key that opens ``agent``'s page, and nothing else."""
    return hmac.new(token.encode(), f"page:{agent}".encode(), hashlib.sha256).hexdigest()


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """Recognises one secret from its digest, so the checker need not hold the secret."""

    digest: str

    @classmethod
    def of(cls, secret: str) -> KeyCheck:
        return cls(key_digest(secret))

    @classmethod
    def from_digest(cls, text: str, where: str = "the page key digest") -> KeyCheck:
        digest = text.strip().lower()
        if len(digest) != DIGEST_CHARS or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{where} must be {DIGEST_CHARS} hex digits")
        return cls(digest)

    def matches(self, supplied: str) -> bool:
        return hmac.compare_digest(key_digest(supplied), self.digest)
