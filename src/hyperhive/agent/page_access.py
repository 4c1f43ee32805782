"""Who may open this agent's page (DESIGN §9): whoever holds its page key.

From the core the harness gets only the digest of its page key
(``HYPERHIVE_PAGE_KEY_DIGEST``); the dashboard's link carries the key itself. A harness run
by hand may be given the operator token (it derives the same key the dashboard links with)
or neither: then it makes a key of its own, kept in ``<state>/page-key`` (0600), and shows
it only to a terminal, never to a log (a harness's output is the core's log).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from hyperhive.errors import ConfigError
from hyperhive.secret_file import create_secret, read_secret
from hyperhive.tokens import KeyCheck, check_token, new_secret, page_key

PAGE_KEY_FILE: Final = "page-key"
DIGEST_ENV: Final = "HYPERHIVE_PAGE_KEY_DIGEST"


@dataclass(frozen=True, slots=True)
class PageAccess:
    check: KeyCheck
    key_file: Path | None = None  # where a key made by this harness lives
    key: str | None = field(default=None, repr=False)  # that key, for a terminal only


def page_access(name: str, state_dir: Path, env: Mapping[str, str]) -> PageAccess:
    digest = env.get(DIGEST_ENV, "").strip()
    if digest:
        return PageAccess(KeyCheck.from_digest(digest, DIGEST_ENV))
    token = env.get("HYPERHIVE_OPERATOR_TOKEN", "").strip()
    if token:
        return PageAccess(KeyCheck.of(page_key(check_token(token), name)))
    path = state_dir / PAGE_KEY_FILE
    key = read_secret(path)
    if key is None:
        create_secret(path, new_secret())  # a harness racing us may win: read theirs
        key = read_secret(path)
        if key is None:
            raise ConfigError(f"{path} vanished while it was being created")
    key = check_token(key, f"the page key in {path}")
    return PageAccess(KeyCheck.of(key), path, key)
