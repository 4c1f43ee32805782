"""From inside agent A's bwrap sandbox, agent B's ``web.sock`` is reachable at no path: the
front door is the only way from one page to another, and it is the operator's."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from hyperhive.backends.base import ContainerSpec
from hyperhive.backends.bwrap import BwrapBackend
from support.backend_probe import Lines

UIDS = {"alice": 1_900_000_201, "bob": 1_900_000_202}
# Tries each path given, then walks the filesystem for any socket named web.sock.
PROBE = r"""
import json, os, socket, stat, sys

def connect(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return "connected"
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()

SKIP = ("/proc", "/sys", "/dev", "/usr", "/nix")
found = []
for top in ("/run", "/tmp", "/state", "/work", "/root", "/var", "/"):
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP]
        found += [os.path.join(root, f) for f in files if f == "web.sock"]
tried = {p: connect(p) for p in json.loads(sys.argv[1])}
print("REPORT " + json.dumps({"tried": tried, "found": sorted(set(found))}), flush=True)
"""


def listening(path: Path, stack: ExitStack) -> None:
    sock = stack.enter_context(socket.socket(socket.AF_UNIX))
    sock.bind(str(path))
    path.chmod(0o777)  # only the sandbox's view may stop a connect, never the mode
    sock.listen()


def spec(root: Path, name: str, command: tuple[str, ...]) -> ContainerSpec:
    agent = root / "state" / "agents" / name
    return ContainerSpec(
        name=name,
        role="agent",
        socket_dir=root / "run" / "agents" / name,
        state_dir=agent / "state",
        claude_dir=agent / "claude",
        config_dir=root / "state" / "applied" / name,
        config_sha="c0ffee",
        command=command,
        extra_ro_binds=(root / "probe",),
        uid=UIDS[name],
        work_dir=agent / "work",
    )


def dirs(spec: ContainerSpec) -> Iterator[Path]:
    assert spec.work_dir is not None
    yield from (spec.socket_dir, spec.state_dir, spec.claude_dir, spec.config_dir, spec.work_dir)


async def test_another_agents_web_sock_is_reachable_at_no_path(short_dir: Path) -> None:
    probe = short_dir / "probe" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(PROBE)
    bob_sock = short_dir / "run" / "agents" / "bob" / "web.sock"
    tries = [
        "/run/hive/web.sock",  # alice's own: the control
        str(bob_sock),
        "/run/hive/../bob/web.sock",
        "/run/agents/bob/web.sock",
        f"/proc/1/root{bob_sock}",
    ]
    alice = spec(short_dir, "alice", (sys.executable, str(probe), json.dumps(tries)))
    backend = BwrapBackend(
        short_dir / "state" / "backend",
        hide=(short_dir / "state", short_dir / "run"),
        stop_timeout=5.0,
    )
    with ExitStack() as stack:
        for each in (alice, spec(short_dir, "bob", ("true",))):
            for path in dirs(each):
                path.mkdir(parents=True, exist_ok=True)
        listening(short_dir / "run" / "agents" / "alice" / "web.sock", stack)
        listening(bob_sock, stack)
        lines = Lines()
        try:
            await backend.create(alice)
            await backend.start(alice, lines)
            report = await lines.report()
        finally:
            await backend.destroy("alice")
    assert report["tried"]["/run/hive/web.sock"] == "connected"
    assert all(got != "connected" for path, got in report["tried"].items() if "bob" in path)
    assert report["found"] == ["/run/hive/web.sock"]
