"""Backends by name, and ``auto``: the strongest isolation this host offers.

``fake`` (:mod:`hyperhive.backends.fake`) can be chosen by name, for tests and
demos, but runs nothing: ``auto`` never picks it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from hyperhive.backends import cpu_groups
from hyperhive.backends.base import Backend, BackendError
from hyperhive.backends.bwrap import BwrapBackend
from hyperhive.backends.fake import NOTHING_RUNS, FakeBackend
from hyperhive.backends.nixos import NixosBackend
from hyperhive.backends.process import ProcessBackend

log = logging.getLogger(__name__)

NIXOS_MARKER: Final = Path("/etc/NIXOS")
PROBE_TIMEOUT: Final = 10.0

# Each factory gets its own work dir and the paths a sandbox must hide.
Factory = Callable[[Path, Sequence[Path]], Backend]

BACKENDS: Final[dict[str, Factory]] = {
    "nixos": lambda work, hide: NixosBackend(
        work, hyperhive_url=os.environ.get("HYPERHIVE_FLAKE_URL") or None
    ),
    # Both put their agents' processes in cgroups below the core where the host allows.
    "bwrap": lambda work, hide: BwrapBackend(work, hide=hide, cpu=cpu_groups.detect()),
    "process": lambda work, hide: ProcessBackend(work, cpu=cpu_groups.detect()),
}


def _fake(work: Path, hide: Sequence[Path]) -> Backend:
    log.warning(NOTHING_RUNS)
    return FakeBackend()


# Chosen only by name: they run no agent, so ``auto`` must never land on one.
STAND_INS: Final[dict[str, Factory]] = {"fake": _fake}


def bwrap_works(bwrap: str = "bwrap") -> bool:
    """Run a tiny sandbox with the namespaces we use; installed is not enough
    (unprivileged user namespaces may be off, or we may be in a container)."""
    path = shutil.which(bwrap)
    if path is None:
        return False
    probe = [
        path, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true",
    ]  # fmt: skip
    try:
        done = subprocess.run(probe, capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("bwrap probe failed: %s", exc)
        return False
    if done.returncode != 0:
        log.info("bwrap probe failed: %s", done.stderr.decode(errors="replace").strip())
    return done.returncode == 0


def detect() -> str:
    if NIXOS_MARKER.exists() and shutil.which("nixos-container"):
        return "nixos"
    if bwrap_works():
        return "bwrap"
    log.warning("backend auto: neither nixos-container nor a working bwrap; using process")
    return "process"


def choose(name: str, *, work_dir: Path, hide: Sequence[Path] = ()) -> Backend:
    """The backend called ``name`` (or ``auto``), keeping its files in
    ``work_dir/<backend>``; ``hide`` are host dirs no sandbox may see (the
    hive's state and run roots)."""
    chosen = detect() if name == "auto" else name
    factory = BACKENDS.get(chosen) or STAND_INS.get(chosen)
    if factory is None:
        known = ", ".join(["auto", *BACKENDS, *STAND_INS])
        raise BackendError(f"unknown backend {name!r}: choose one of {known}")
    log.info("container backend: %s", chosen)
    return factory(work_dir / chosen, tuple(hide))
