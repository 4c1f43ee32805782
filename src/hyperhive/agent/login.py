"""What the harness knows of its engine's login. It holds no key of its own.

Behind the core's model gateway (``AgentSettings.api_socket``, every container) the core
holds the credentials (core/gateway/credentials.py); the operator saves them on the
agent's page, which the core answers itself, and the harness only asks the core whether
it has one (``login_state``, see agent/core_link.py). A harness run by hand without a
gateway uses what its environment gives the CLI (``ANTHROPIC_API_KEY``, …) or the CLI's
own login in its config dir, as Claude Code would.

:meth:`Credentials.secrets` feeds the history's redaction: the env's values, if any.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

ENV_KEYS: Final = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
# Claude Code's own login (``claude /login``) in its config dir: only looked at, never read.
CLI_LOGIN_FILE: Final = ".credentials.json"
# Where the page sends the operator instead: keys are saved in the core, never here.
ELSEWHERE: Final = "log in on this agent's page on the hive's dashboard: keys stay in the core"


class Credentials:
    def __init__(self, claude_dir: Path, env: Mapping[str, str]) -> None:
        self.claude_dir = claude_dir
        self._env = env

    def available(self) -> bool:
        """Without a gateway: whether the CLI has something to log in with."""
        return bool(
            any(self._env.get(k) for k in ENV_KEYS) or (self.claude_dir / CLI_LOGIN_FILE).exists()
        )

    def secrets(self) -> list[str]:
        return [v for k in ENV_KEYS if (v := self._env.get(k))]

    def mark(self) -> tuple[int, int | None]:
        """Changes when what :meth:`available` looks at does (the hash stays here)."""
        try:
            stamp = (self.claude_dir / CLI_LOGIN_FILE).stat().st_mtime_ns
        except OSError:
            stamp = None
        return hash(tuple(self.secrets())), stamp
