"""Which fields of ``agent.toml`` a proposed config changes, as dotted names.

Pure: both texts are parsed with :mod:`tomllib` and compared key by key. Tables are
compared inside (``sandbox.network``); anything else, arrays included, is one value
(``allow_send``, ``sandbox.ro_binds``). A table present on one side only changes every
field in it (an empty one changes its own name). No applied text (a new agent), or one
that does not parse, means every field of the proposed one changed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from typing import Any


def changed_fields(applied: str | None, proposed: str) -> frozenset[str]:
    """The dotted names of every field that differs from ``applied`` to ``proposed``.

    ``proposed`` must parse (it was checked when it was staged); an applied text that
    does not is treated as absent."""
    new = tomllib.loads(proposed)
    old: dict[str, Any] = {}
    if applied is not None:
        try:
            old = tomllib.loads(applied)
        except tomllib.TOMLDecodeError:
            old = {}
    return frozenset(_diff(old, new, ""))


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            yield from _diff(before, after, f"{name}.")
        elif key not in old or key not in new:
            yield from _leaves(before if key in old else after, name)
        elif isinstance(before, dict) or isinstance(after, dict) or not _same(before, after):
            yield name


def _leaves(value: Any, name: str) -> Iterator[str]:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from _leaves(value[key], f"{name}.{key}")
    else:
        yield name


def _same(a: Any, b: Any) -> bool:
    # TOML types are distinct: 1 and 1.0 or true and 1 are other values, not equal ones.
    return type(a) is type(b) and a == b
