"""The credentials only the core holds (DESIGN §9): the :class:`~.seams.CredentialSource`.

An agent's requests go out with its own credential, else the hive's, else one from the
core's environment (``ANTHROPIC_API_KEY``, ``CLAUDE_CODE_OAUTH_TOKEN``,
``ANTHROPIC_AUTH_TOKEN``). Stored ones live in ``<state>/credentials/`` (0700):
``hive.json`` and ``agents/<name>.json``, each 0600, replaced atomically, read without
following a symlink (:func:`hyperhive.secret_file.read_secret`). A value never leaves
this module except as the :class:`~.seams.Credential` the gateway sends upstream: status
answers say only where one is, and the save hook is told only whose changed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, cast, get_args

from hyperhive.core.gateway.seams import Credential, CredentialKind
from hyperhive.errors import BadRequest, ConfigError
from hyperhive.names import MANAGER, validate_agent_name
from hyperhive.secret_file import read_secret, replace_secret

log = logging.getLogger(__name__)
KINDS: Final = frozenset(get_args(CredentialKind))
# What the core's env may give, in order: a key wins over a token.
ENV_CREDENTIALS: Final = (
    ("ANTHROPIC_API_KEY", "api_key"),
    ("CLAUDE_CODE_OAUTH_TOKEN", "oauth_token"),
    ("ANTHROPIC_AUTH_TOKEN", "oauth_token"),
)
# Printable ASCII without blanks: what an API key or a setup-token token looks like.
_VALUE_RE: Final = re.compile(r"[\x21-\x7e]{8,512}")
DIR_NAME: Final = "credentials"
HIVE_FILE: Final = "hive.json"

OnSaved = Callable[[str | None], object]  # told whose credential changed (None: the hive's)


def check_value(kind: str, value: str) -> str:
    """``value`` stripped, if it may be a credential of ``kind``; else :class:`BadRequest`
    (whose text never holds the value)."""
    if kind not in KINDS:
        raise BadRequest("kind must be api_key or oauth_token")
    value = value.strip()
    if not _VALUE_RE.fullmatch(value):
        what = "an API key" if kind == "api_key" else "a token"
        raise BadRequest(f"that does not look like {what} (8-512 printable characters)")
    return value


def credential(kind: str, value: str) -> Credential:
    """A checked :class:`~.seams.Credential` (see :func:`check_value`)."""
    value = check_value(kind, value)
    return Credential(cast(CredentialKind, kind), value)


def _agent_name(agent: str) -> str:
    return agent if agent == MANAGER else validate_agent_name(agent)


class HiveCredentials:
    """The store and the env, as one :class:`~.seams.CredentialSource`."""

    def __init__(
        self, state_dir: Path, env: Mapping[str, str], *, on_saved: OnSaved | None = None
    ) -> None:
        self.root = state_dir / DIR_NAME
        self._env = _from_env(env)
        self._on_saved = on_saved
        # What the files hold, once read: the core is their only writer.
        self._cache: dict[str | None, Credential | None] = {}
        # Grows on every save or clear; waiting harnesses compare it (it is no secret).
        self.generation = 0

    def _path(self, agent: str | None) -> Path:
        if agent is None:
            return self.root / HIVE_FILE
        return self.root / "agents" / f"{_agent_name(agent)}.json"

    def _stored(self, agent: str | None) -> Credential | None:
        if agent in self._cache:
            return self._cache[agent]
        found = self._cache[agent] = self._read(self._path(agent))
        return found

    def _read(self, path: Path) -> Credential | None:
        try:
            text = read_secret(path)
        except ConfigError as exc:
            log.warning("ignoring a stored credential: %s", exc.message)
            return None
        if not text:
            return None
        try:
            data = json.loads(text)
            kind, value = data["kind"], data["value"]
            if not isinstance(kind, str) or not isinstance(value, str):
                raise TypeError
            return credential(kind, value)
        except (ValueError, KeyError, TypeError, BadRequest):
            log.warning("ignoring %s: not a credential this core wrote", path)
            return None

    # -- CredentialSource ----------------------------------------------------------

    def for_agent(self, agent: str) -> Credential | None:
        return self._stored(agent) or self._stored(None) or self._env

    # -- the operator's side -------------------------------------------------------

    def status(self, agent: str) -> dict[str, bool]:
        """Where ``agent`` has a credential: its own, the hive's, the core's env."""
        return {
            "agent": self._stored(agent) is not None,
            "hive": self._stored(None) is not None,
            "env": self._env is not None,
        }

    def save(self, kind: str, value: str, agent: str | None = None) -> None:
        """Store a credential for ``agent`` (None: the whole hive), replacing any."""
        checked = credential(kind, value)
        path = self._path(agent)
        _replace_secret(path, json.dumps({"kind": checked.kind, "value": checked.value}))
        self._cache[agent] = checked
        self._changed(agent)

    def clear(self, agent: str | None = None) -> bool:
        """Forget ``agent``'s stored credential (None: the hive's); False if none was."""
        path = self._path(agent)
        try:
            path.unlink()
        except FileNotFoundError:
            self._cache[agent] = None
            return False
        self._cache[agent] = None
        self._changed(agent)
        return True

    def _changed(self, agent: str | None) -> None:
        self.generation += 1
        if self._on_saved is not None:
            self._on_saved(agent)


def _from_env(env: Mapping[str, str]) -> Credential | None:
    for name, kind in ENV_CREDENTIALS:
        value = (env.get(name) or "").strip()
        if value:
            return Credential(cast(CredentialKind, kind), value)
    return None


def _private_dir(path: Path) -> None:
    """``path`` and its parents up to the state dir: real directories, 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for part in (path, path.parent) if path.name == "agents" else (path,):
        if part.is_symlink() or not part.is_dir():
            raise ConfigError(f"{part} is not a directory of the core's: refusing it")
        os.chmod(part, 0o700, follow_symlinks=False)


def _replace_secret(path: Path, body: str) -> None:
    _private_dir(path.parent)
    replace_secret(path, body)
