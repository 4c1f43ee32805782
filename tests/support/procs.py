"""The host's processes as tests look for them: by command line, in /proc."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def processes() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every process whose command line can be read now."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if raw:
                yield int(entry.name), raw.rstrip(b"\0").split(b"\0")


def parent(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(status.split("PPid:")[1].split()[0])


def sandboxes(marker: Path) -> list[tuple[int, int | None]]:
    """(pid, ppid) of every bwrap process whose command line names ``marker``."""
    named = str(marker).encode()
    return [
        (pid, parent(pid))
        for pid, argv in processes()
        if argv[0].endswith(b"bwrap") and any(named in arg for arg in argv)
    ]


def sandboxed_harnesses(marker: Path) -> set[str]:
    """Names of the agents whose harness runs inside a bwrap sandbox naming ``marker``."""
    return set(sandboxed_harness_pids(marker).values())


def sandboxed_harness_pids(marker: Path) -> dict[int, str]:
    """Harness pid → agent name, for harnesses inside a bwrap sandbox naming ``marker``."""
    boxes = {pid for pid, _ in sandboxes(marker)}
    found = {}
    for pid, argv in processes():
        if argv[-3:-1] != [b"serve", b"--name"] or argv[0].endswith(b"bwrap"):
            continue
        if b"setpriv" in argv[0]:
            continue  # not yet the harness: setpriv is about to become it
        ancestor = parent(pid)
        while ancestor is not None and ancestor > 1 and ancestor not in boxes:
            ancestor = parent(ancestor)
        if ancestor in boxes:
            found[pid] = argv[-1].decode()
    return found


def harness_pids(name: str, state: Path | None = None) -> list[int]:
    """Host pids of the harnesses serving agent ``name`` (with ``state``: of that hive)."""
    found = []
    for pid, argv in processes():
        if argv[-3:] != [b"serve", b"--name", name.encode()] or argv[0].endswith(b"bwrap"):
            continue
        if b"setpriv" in argv[0]:
            continue  # not yet the harness: setpriv is about to become it
        if state is not None and not _environ_has(pid, f"HYPERHIVE_AGENT_STATE={state}"):
            continue
        found.append(pid)
    return found


def _environ_has(pid: int, entry: str) -> bool:
    try:
        return entry.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
