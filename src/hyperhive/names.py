"""Participant names: who may exist in a hive, checked before anything touches disk."""

from __future__ import annotations

import re
from typing import Final

from hyperhive.errors import BadName

NAME_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,8}")
MANAGER: Final = "hm1nd"
OPERATOR: Final = "operator"
# Core events are sent "from" this name; it can never be registered.
CORE: Final = "c0re"
RESERVED: Final = frozenset({OPERATOR, CORE})


def validate_agent_name(name: object) -> str:
    """Return ``name`` if it may name an agent, else raise :class:`BadName`.

    The limit of 9 characters comes from nixos-container, which refuses
    container names over 11 characters and we prefix ``h-``.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise BadName(
            f"invalid agent name {name!r}: use 1-9 characters, a lowercase letter "
            "first, then lowercase letters, digits or '-'"
        )
    if name in RESERVED:
        raise BadName(f"{name!r} is reserved")
    return name


def container_name(name: str) -> str:
    return f"h-{name}"
