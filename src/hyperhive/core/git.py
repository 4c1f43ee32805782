"""The real ``git`` CLI as an asyncio subprocess: isolated, hookless, bounded.

Every call gets a fresh environment (no ``GIT_*`` leaks in from the daemon's
own environment, no system or user config, ``HOME`` pointed at nothing) and
``-c`` overrides that switch off everything in git that can run a program:
hooks, fsmonitor, background gc. Each call has a deadline, a cap on what it
may print and (through ``prlimit``) on the memory it may map, so a repository
can cost bounded time and memory, never hang or flood the core.

git only ever runs on the core's own repos: what an agent or the manager
writes is read by :mod:`hyperhive.core.object_store`, never by git.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hyperhive.errors import HiveError

IDENT_NAME: Final = "hive-c0re"
IDENT_EMAIL: Final = "hive-c0re@localhost"
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_MEMORY: Final = 1024 * 1024 * 1024  # address space, bytes
MAX_STDOUT: Final = 64 * 1024 * 1024
MAX_STDERR: Final = 64 * 1024
CHUNK: Final = 64 * 1024
SAFETY: Final = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.autocrlf=false",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
)  # fmt: skip


class ConfigRepoError(HiveError):
    """git failed, or a config repo is not usable; ``stderr`` is git's own words."""

    code = "config_repo"

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


@dataclass(frozen=True, slots=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str
    truncated: bool = False


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "XDG_CONFIG_HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": IDENT_NAME,
        "GIT_AUTHOR_EMAIL": IDENT_EMAIL,
        "GIT_COMMITTER_NAME": IDENT_NAME,
        "GIT_COMMITTER_EMAIL": IDENT_EMAIL,
        "LC_ALL": "C",  # git's messages are matched on and shown as they are
    }
    env.update(extra or {})
    return env


def alternates_value(path: Path) -> str:
    """One entry for ``GIT_ALTERNATE_OBJECT_DIRECTORIES``, quoted if it holds a ':'."""
    text = str(path)
    if ":" in text or text.startswith('"'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


class Git:
    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        executable: str = "git",
        memory: int | None = DEFAULT_MEMORY,
    ) -> None:
        self.timeout = timeout
        self._executable = executable
        prlimit = shutil.which("prlimit") if memory is not None else None
        self._prefix = (prlimit, f"--as={memory}", "--") if prlimit else ()
        self._found = shutil.which(executable) is not None

    async def run(
        self,
        *args: str,
        git_dir: Path | None = None,
        work_tree: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
        check: bool = True,
        max_stdout: int = MAX_STDOUT,
        truncate: bool = False,
    ) -> GitResult:
        """Run ``git args``; with ``truncate``, output past ``max_stdout`` is cut, else refused."""
        if not self._found:
            raise ConfigRepoError(f"{self._executable!r} is not installed (not on PATH)")
        argv = list(SAFETY)
        if git_dir is not None:
            argv.append(f"--git-dir={git_dir}")
        if work_tree is not None:
            argv.append(f"--work-tree={work_tree}")
        argv.extend(args)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._prefix,
                self._executable,
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=git_env(env),
                cwd="/",
            )
        except FileNotFoundError:
            raise ConfigRepoError(f"{self._executable!r} is not installed (not on PATH)") from None
        try:
            async with asyncio.timeout(self.timeout):
                (out, cut), (err, _), _ = await asyncio.gather(
                    _read(proc, proc.stdout, max_stdout),
                    _read(proc, proc.stderr, MAX_STDERR, stop=False),
                    _feed(proc, stdin),
                )
                code = await proc.wait()
        except TimeoutError:
            raise ConfigRepoError(f"git {args[0]} took longer than {self.timeout:g}s") from None
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        stderr = err.decode(errors="replace")
        if cut and not truncate:
            raise ConfigRepoError(f"git {args[0]} printed more than {max_stdout} bytes", stderr)
        if check and code != 0 and not cut:
            detail = stderr.strip()[-2000:] or "no message"
            raise ConfigRepoError(f"git {args[0]} failed (exit {code}): {detail}", stderr)
        return GitResult(code, out, stderr, cut)


async def _read(
    proc: asyncio.subprocess.Process,
    stream: asyncio.StreamReader | None,
    limit: int,
    *,
    stop: bool = True,
) -> tuple[bytes, bool]:
    """Read ``stream`` to its end keeping ``limit`` bytes; with ``stop``, kill git past it."""
    assert stream is not None
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(CHUNK):
        if size <= limit:
            chunks.append(chunk)
        size += len(chunk)
        if size > limit and stop:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return b"".join(chunks)[:limit], True
    return b"".join(chunks)[:limit], size > limit


async def _feed(proc: asyncio.subprocess.Process, data: bytes | None) -> None:
    if data is None or proc.stdin is None:
        return
    # git may exit before reading everything (an error, or killed for output);
    # its exit status tells the story, not the broken pipe.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
    proc.stdin.close()
