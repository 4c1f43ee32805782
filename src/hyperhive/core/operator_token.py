"""The operator token always exists (DESIGN §9), and the dashboard link that carries it.

:func:`resolve_token`: the token given by ``--token`` / ``HYPERHIVE_OPERATOR_TOKEN``, else
the one in ``<state>/operator-token``, else a new one written there (0600). The token is
never logged; :func:`startup_lines` prints it only to a terminal, the Jupyter way, because
a daemon's stdout under systemd is the journal.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlencode

from hyperhive.errors import ClientError, ConfigError
from hyperhive.secret_file import create_secret, read_secret
from hyperhive.tokens import check_token, new_secret

TOKEN_FILE: Final = "operator-token"
Source = Literal["given", "file", "generated"]
log = logging.getLogger(__name__)


class DashboardOff(ClientError):
    code = "no_dashboard"


@dataclass(frozen=True, slots=True)
class OperatorToken:
    value: str = field(repr=False)
    source: Source
    path: Path  # where a stored token lives (unused when it was given)

    def where(self) -> str:
        """Where the operator finds the token, without showing it."""
        if self.source == "given":
            return "as given by --token / HYPERHIVE_OPERATOR_TOKEN"
        return str(self.path)


def resolve_token(given: str | None, state_dir: Path) -> OperatorToken:
    path = state_dir / TOKEN_FILE
    if given is not None and given.strip():
        return OperatorToken(check_token(given), "given", path)
    stored = read_secret(path)
    if stored is not None:
        return OperatorToken(_checked(stored, path), "file", path)
    if create_secret(path, new_secret()):
        log.info("generated the operator token in %s", path)
        source: Source = "generated"
    else:
        source = "file"  # another start created it first: use theirs
    stored = read_secret(path)
    if stored is None:
        raise ConfigError(f"{path} vanished while it was being created")
    return OperatorToken(_checked(stored, path), source, path)


def _checked(stored: str, path: Path) -> str:
    try:
        return check_token(stored, f"the operator token in {path}")
    except ConfigError as exc:
        raise ConfigError(f"{exc.message} (delete the file to generate a new one)") from None


@dataclass(frozen=True, slots=True)
class DashboardLink:
    """Where the dashboard listens, and the token that opens it."""

    host: str
    port: int
    token: str = field(repr=False)

    @property
    def base(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}/"

    def login_url(self) -> str:
        return f"{self.base}?{urlencode({'token': self.token})}"


def _url_host(host: str) -> str:
    # A wildcard address listens everywhere but is no place to browse to: name loopback.
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    if address.is_unspecified:
        return "[::1]" if address.version == 6 else "127.0.0.1"
    return f"[{address}]" if address.version == 6 else str(address)


def startup_lines(link: DashboardLink, token: OperatorToken, *, tty: bool) -> list[str]:
    """What ``hive-c0re serve`` prints after its ready line."""
    if tty:
        return [f"dashboard: {link.login_url()}"]
    return [f"dashboard: {link.base} (token: {token.where()}, or run `hive dashboard-url`)"]
