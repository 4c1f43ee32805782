"""``claude setup-token``, run by the core for an agent's page (so the token it prints
never enters a container): one flow per agent at a time, a few at once in the hive, each
in a PTY with a private, throw-away ``CLAUDE_CONFIG_DIR`` of the core's.

:class:`SetupTokenFlow` drives one run: the authorize URL it prints, the code the
operator pastes, the token it prints then. :class:`SetupTokens` keeps them by agent and
ends one that waits too long for its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from hyperhive.errors import BadRequest, Busy, HiveError

_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
_URL_RE: Final = re.compile(r"https://\S+")
_TOKEN_RE: Final = re.compile(r"sk-ant-[A-Za-z0-9_\-]{16,}")
FLOW_TIMEOUT: Final = 60.0  # for the CLI to print what we wait for
CODE_WAIT: Final = 900.0  # for the operator to come back with the code
MAX_FLOWS: Final = 4  # hive-wide
MAX_OUTPUT: Final = 64 * 1024  # of the CLI's output kept while waiting for a pattern
# Of the core's env, only what reaching the internet may need goes to the CLI.
PASSED_ENV: Final = (
    "PATH",
    "LANG",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
)


class LoginError(HiveError):
    code = "login"


class SetupTokenFlow:
    """``claude setup-token`` needs a TTY: it prints an authorize URL, reads a
    code, then prints a long-lived token. We drive it through a PTY."""

    def __init__(self, command: list[str], env: Mapping[str, str]) -> None:
        self._command = command
        self._env = dict(env)
        self._proc: asyncio.subprocess.Process | None = None
        self._master: int | None = None
        self._output = ""
        self._more = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._master is not None

    async def start(self) -> str:
        await self.abort()
        master, slave = pty.openpty()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=self._env,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(master)
            raise LoginError(f"cannot run {self._command[0]}: {exc.strerror}") from None
        finally:
            os.close(slave)
        self._master, self._output = master, ""
        asyncio.get_running_loop().add_reader(master, self._on_output)
        return (await self._expect(_URL_RE)).rstrip(".,)")

    async def finish(self, code: str) -> str:
        if self._master is None:
            raise LoginError("no setup-token flow is running; start it first")
        if not code.strip() or len(code) > 4096 or "\n" in code.strip():
            raise BadRequest("paste the code shown after authorizing (one line)")
        self._output = ""
        os.write(self._master, code.strip().encode() + b"\r")
        try:
            return await self._expect(_TOKEN_RE)
        finally:
            await self.abort()

    def _on_output(self, *_: object) -> None:
        assert self._master is not None
        try:
            chunk = os.read(self._master, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            asyncio.get_running_loop().remove_reader(self._master)
        text = self._output + _ANSI_RE.sub("", chunk.decode(errors="replace"))
        self._output = text[-MAX_OUTPUT:]
        self._more.set()

    async def _expect(self, pattern: re.Pattern[str]) -> str:
        assert self._proc is not None
        ended = asyncio.ensure_future(self._proc.wait())
        try:
            async with asyncio.timeout(FLOW_TIMEOUT):
                while not (found := pattern.search(self._output.replace("\r", ""))):
                    if ended.done():
                        raise LoginError("claude setup-token ended without finishing")
                    self._more.clear()
                    more = asyncio.ensure_future(self._more.wait())
                    await asyncio.wait({more, ended}, return_when=asyncio.FIRST_COMPLETED)
                    more.cancel()
        except TimeoutError:
            await self.abort()
            raise LoginError("claude setup-token did not answer in time") from None
        finally:
            if not ended.done():
                ended.cancel()
        return found.group(0)

    async def abort(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = None
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                await self._proc.wait()
        self._proc = None


class _Running:
    def __init__(self, flow: SetupTokenFlow, home: Path, expiry: asyncio.TimerHandle) -> None:
        self.flow, self.home, self.expiry = flow, home, expiry
        self.lock = asyncio.Lock()


class SetupTokens:
    """The setup-token flows the core runs, at most one per agent."""

    def __init__(
        self,
        command: list[str],
        env: Mapping[str, str],
        *,
        scratch: Path | None = None,
        max_flows: int = MAX_FLOWS,
        code_wait: float = CODE_WAIT,
    ) -> None:
        self._command = command
        self._env = {k: env[k] for k in PASSED_ENV if k in env}
        self._scratch = scratch  # where the private config dirs go (None: the system's tmp)
        self._max = max_flows
        self._code_wait = code_wait
        self._flows: dict[str, _Running] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, agent: str) -> str:
        """Start (or start again) ``agent``'s flow; the authorize URL."""
        await self.abort(agent)
        if len(self._flows) >= self._max:
            raise Busy("too many setup-token logins are running; try again in a minute")
        if self._scratch is not None:
            self._scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        home = Path(tempfile.mkdtemp(prefix="setup-token-", dir=self._scratch))
        env = {**self._env, "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home)}
        flow = SetupTokenFlow(self._command, env)
        loop = asyncio.get_running_loop()
        expiry = loop.call_later(self._code_wait, self._expire, agent)
        running = self._flows[agent] = _Running(flow, home, expiry)
        try:
            async with running.lock:
                return await flow.start()
        except BaseException:
            await self.abort(agent, running)
            raise

    async def finish(self, agent: str, code: str) -> str:
        """Feed ``agent``'s flow the pasted code; the token (the caller stores it)."""
        running = self._flows.get(agent)
        if running is None:
            raise LoginError("no setup-token flow is running; start it first")
        if running.lock.locked():
            raise Busy("this setup-token flow is busy; wait for its answer")
        try:
            async with running.lock:
                return await running.flow.finish(code)
        except BadRequest:
            raise  # a malformed code: the flow goes on, the operator pastes again
        except BaseException:
            await self.abort(agent, running)
            raise
        finally:
            if not running.flow.running:
                await self.abort(agent, running)

    def _expire(self, agent: str) -> None:
        task = asyncio.get_running_loop().create_task(self.abort(agent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def abort(self, agent: str, only: _Running | None = None) -> None:
        """End ``agent``'s flow (with ``only``: if that one is still its flow)."""
        running = self._flows.get(agent)
        if running is None or (only is not None and running is not only):
            if only is not None:
                await only.flow.abort()
                shutil.rmtree(only.home, ignore_errors=True)
            return
        del self._flows[agent]
        running.expiry.cancel()
        await running.flow.abort()
        shutil.rmtree(running.home, ignore_errors=True)

    async def close(self) -> None:
        for agent in list(self._flows):
            await self.abort(agent)
