"""Extra read-only binds, checked where they really lead.

``agent.toml``'s ``sandbox.ro_binds`` is written by the manager, so a bind is
judged by its real path (symlinks resolved, ``//`` and ``/var/run`` spelled
out) against the places no agent may see: the hive's real state and run dirs
(wherever they are), the kernel's views of other processes and devices, and
the host's credentials. A bind is refused when it is such a place, lies
inside one, or contains one (``/etc`` holds ``/etc/shadow``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from hyperhive.core.agent_config import BadConfig

# Whatever the core's own dirs are, these are never an agent's to read.
ALWAYS_FORBIDDEN: Final = (
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/root",
    "/home",
    "/boot",
    "/etc/hyperhive",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/nixos-containers",
    "/var/lib/hyperhive",
    "/run/hyperhive",
)


def forbidden_roots(state_dir: Path, run_dir: Path) -> tuple[Path, ...]:
    roots = {Path(os.path.realpath(p)) for p in (*ALWAYS_FORBIDDEN, state_dir, run_dir)}
    return tuple(sorted(roots))


def check_binds(binds: Iterable[str], forbidden: tuple[Path, ...]) -> tuple[Path, ...]:
    """The real paths of ``binds``, or :class:`BadConfig` naming the first bad one."""
    checked: list[Path] = []
    for i, bind in enumerate(binds):
        where = f"agent.toml: sandbox.ro_binds[{i}] ({bind})"
        # As written, then as far as it resolves (a path under /proc may not),
        # then as it really leads.
        _refuse_forbidden(where, bind, Path(os.path.normpath(bind)), forbidden)
        with contextlib.suppress(OSError):
            _refuse_forbidden(where, bind, Path(os.path.realpath(bind)), forbidden)
        try:
            real = Path(os.path.realpath(bind, strict=True))
        except OSError:
            raise BadConfig(f"{where} does not exist on this host") from None
        _refuse_forbidden(where, bind, real, forbidden)
        if not real.is_dir() and not real.is_file():
            raise BadConfig(f"{where} is not a directory or file on this host")
        if real not in checked:
            checked.append(real)
    return tuple(checked)


def _refuse_forbidden(where: str, bind: str, path: Path, forbidden: tuple[Path, ...]) -> None:
    for root in forbidden:
        if path == root or root in path.parents or path in root.parents:
            via = f" (it leads to {path})" if str(path) != bind else ""
            raise BadConfig(f"{where} would show the agent {root}, which agents never see{via}")
