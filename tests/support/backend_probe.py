"""A probe to run as a container's command, and helpers to watch it from the host.

The probe is a stand-alone Python script (it runs inside sandboxes, so it
imports nothing of hyperhive): ``report`` prints one JSON line about what it can
see and exits; ``tree`` starts a grandchild and an escapee in its own session,
prints their pids and sleeps; ``crash`` exits 7 while a grandchild still holds
stdout; ``stubborn`` ignores SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROBE = r"""
import json, os, signal, socket, subprocess, sys, time

mode, args = sys.argv[1], sys.argv[2:]
SLEEP = [sys.executable, "-c", "import signal; signal.pause()"]

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return "ERR " + type(exc).__name__

def writable(path):
    try:
        probe = os.path.join(path, ".probe")
        with open(probe, "w") as f:
            f.write("x")
        os.unlink(probe)
        return True
    except OSError:
        return False

def connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__

if mode == "report":
    spec = json.loads(args[0])
    print("REPORT " + json.dumps({
        "pid": os.getpid(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "hostname": socket.gethostname(),
        "env": {k: v for k, v in os.environ.items()},
        "cwd": os.getcwd(),
        "read": {p: read(p) for p in spec.get("read", [])},
        "exists": {p: os.path.exists(p) for p in spec.get("exists", [])},
        "writable": {p: writable(p) for p in spec.get("writable", [])},
        "connect": connect(spec["port"]) if spec.get("port") else None,
        "rlimit_as": __import__("resource").getrlimit(__import__("resource").RLIMIT_AS)[0],
        "cgroup": read("/proc/self/cgroup"),
        "nice": os.nice(0),
    }), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    sys.exit(0)

if mode == "escape":
    # What an agent would try to leave its sandbox; each answer is what happened.
    import ctypes
    spec = json.loads(args[0])
    def status():
        keep = ("Uid", "Gid", "Groups", "Cap", "NoNewPrivs")
        return dict(l.split(":", 1) for l in read("/proc/self/status").splitlines()
                    if l.startswith(keep))
    def run(argv):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return "ERR " + type(exc).__name__
        return f"exit {done.returncode}"
    def by_handle(path):
        libc = ctypes.CDLL(None, use_errno=True)
        class Handle(ctypes.Structure):
            _fields_ = [("size", ctypes.c_uint), ("type", ctypes.c_int),
                        ("bytes", ctypes.c_char * 128)]
        handle, mount_id = Handle(), ctypes.c_int()
        handle.size = 128
        if libc.name_to_handle_at(-100, path.encode(), ctypes.byref(handle),
                                  ctypes.byref(mount_id), 0) != 0:
            return "name_to_handle_at " + os.strerror(ctypes.get_errno())
        fd = os.open(path, os.O_RDONLY)
        got = libc.open_by_handle_at(fd, ctypes.byref(handle), os.O_RDONLY)
        return "opened" if got >= 0 else os.strerror(ctypes.get_errno())
    def write(path):
        try:
            with open(path, "w") as f:
                f.write("escaped")
            return "written"
        except OSError as exc:
            return type(exc).__name__
    print("REPORT " + json.dumps({
        "status": {k: v.strip() for k, v in status().items()},
        "remount": run(["mount", "-o", "remount,rw", "/usr"]),
        "bind": run(["mount", "--bind", "/state", "/usr"]),
        "userns_remount": run(["unshare", "--user", "--map-root-user", "--mount",
                               "sh", "-c", "mount -o remount,rw /usr && touch /usr/escaped"]),
        "open_by_handle_at": by_handle("/state"),
        "read": {p: read(p)[:40] for p in spec.get("read", [])},
        "write": {p: write(p) for p in spec.get("write", [])},
    }), flush=True)
    sys.exit(0)

if mode == "crash":
    subprocess.Popen(SLEEP)  # holds our stdout open after we die
    print("crashing", flush=True)
    os._exit(7)

if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

child = subprocess.Popen(SLEEP)
escapee = subprocess.Popen(SLEEP, start_new_session=True, stdout=subprocess.DEVNULL)
print(f"TREE {os.getpid()} {child.pid} {escapee.pid}", flush=True)
while True:
    signal.pause()
"""


@dataclass
class Lines:
    """An OutputSink that queues every line, so tests can await the one they want."""

    queue: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    seen: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, name: str, line: str) -> None:
        self.seen.append((name, line))
        self.queue.put_nowait((name, line))

    async def next_with(self, prefix: str, within: float = 20.0) -> str:
        async with asyncio.timeout(within):
            while True:
                _, line = await self.queue.get()
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()

    async def report(self, within: float = 20.0) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(await self.next_with("REPORT ", within))
        return data


def write_probe(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "probe.py"
    path.write_text(PROBE)
    return path


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait (on pidfds, no polling) until every pid has ended; return survivors."""
    fds: dict[int, int] = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue
    try:
        pending = set(fds)
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select(list(pending), [], [], remaining)
            pending -= set(ready)
        return [fds[fd] for fd in pending]
    finally:
        for fd in fds:
            os.close(fd)
