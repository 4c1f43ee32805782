"""Where the gateway's parts meet: what a response used, who may send, and with what.

Plain values and two small Protocols; the server (:mod:`.server`) depends on these and
nothing else of metering or credentials, and ships :class:`Unmetered` for a hive that
counts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

CredentialKind = Literal["api_key", "oauth_token"]
# What the Messages API wants alongside a Bearer token from ``claude setup-token``.
OAUTH_BETA = "oauth-2025-04-20"


@dataclass(frozen=True, slots=True)
class Usage:
    """The token counts of one response, as the API's ``usage`` reports them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


@dataclass(frozen=True, slots=True)
class Credential:
    """A secret the core holds for the upstream. ``repr`` never shows it."""

    kind: CredentialKind
    value: str

    def __repr__(self) -> str:
        return f"Credential({self.kind}, <redacted>)"

    def headers(self) -> list[tuple[str, str]]:
        """The headers that authenticate a request with it (the caller adds
        :data:`OAUTH_BETA` to ``anthropic-beta`` for a token)."""
        if self.kind == "api_key":
            return [("x-api-key", self.value)]
        return [("authorization", f"Bearer {self.value}")]


class CredentialSource(Protocol):
    def for_agent(self, agent: str) -> Credential | None:
        """The credential ``agent``'s requests go out with (its own, else the hive's),
        or None when the hive has none for it."""
        ...


class Metering(Protocol):
    def refusal(self, agent: str) -> str | None:
        """None when ``agent`` may send a new request; else why not, in words the
        model and the operator both read (e.g. its budget is spent)."""
        ...

    def record(self, agent: str, model: str | None, usage: Usage) -> None:
        """One finished response of ``agent``'s, with what it used."""
        ...


class Unmetered:
    """Admits everyone and counts nothing."""

    def refusal(self, agent: str) -> str | None:
        return None

    def record(self, agent: str, model: str | None, usage: Usage) -> None:
        return None
