"""Engine credentials: an API key or an OAuth token, stored 0600 in the
credentials dir, and the ``claude setup-token`` flow run in a PTY.

Secrets pass through here and nowhere else: they are never logged, echoed or
published; :meth:`Credentials.secrets` feeds the history's redaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from hyperhive.errors import BadRequest, HiveError

API_KEY_FILE: Final = "hyperhive-api-key"
OAUTH_TOKEN_FILE: Final = "hyperhive-oauth-token"
ENV_KEYS: Final = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
_SECRET_RE: Final = re.compile(r"[\x21-\x7e]{8,512}")
_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
_URL_RE: Final = re.compile(r"https://\S+")
_TOKEN_RE: Final = re.compile(r"sk-ant-[A-Za-z0-9_\-]{16,}")
FLOW_TIMEOUT: Final = 60.0


class LoginError(HiveError):
    code = "login"


class Credentials:
    def __init__(self, claude_dir: Path, env: Mapping[str, str]) -> None:
        self.claude_dir = claude_dir
        self._env = env

    def _stored(self, filename: str) -> str | None:
        try:
            return (self.claude_dir / filename).read_text().strip() or None
        except FileNotFoundError:
            return None

    def engine_env(self) -> dict[str, str]:
        """What the engine needs in its environment; the process env wins."""
        extra: dict[str, str] = {}
        key, token = self._stored(API_KEY_FILE), self._stored(OAUTH_TOKEN_FILE)
        if key and not self._env.get("ANTHROPIC_API_KEY"):
            extra["ANTHROPIC_API_KEY"] = key
        if token and not self._env.get("CLAUDE_CODE_OAUTH_TOKEN"):
            extra["CLAUDE_CODE_OAUTH_TOKEN"] = token
        return extra

    def available(self) -> bool:
        return bool(
            any(self._env.get(k) for k in ENV_KEYS)
            or self.engine_env()
            or (self.claude_dir / ".credentials.json").exists()
        )

    def secrets(self) -> list[str]:
        values = [self._env.get(k) for k in ENV_KEYS]
        values += [self._stored(API_KEY_FILE), self._stored(OAUTH_TOKEN_FILE)]
        return [v for v in values if v]

    def save_api_key(self, key: str) -> None:
        self._save(API_KEY_FILE, key.strip(), "API key")

    def save_oauth_token(self, token: str) -> None:
        self._save(OAUTH_TOKEN_FILE, token.strip(), "token")

    def _save(self, filename: str, value: str, what: str) -> None:
        if not _SECRET_RE.fullmatch(value):
            raise BadRequest(f"that does not look like an {what} (8-512 printable characters)")
        self.claude_dir.mkdir(parents=True, exist_ok=True)
        path = self.claude_dir / filename
        tmp = path.with_name(filename + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        os.replace(tmp, path)


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
        self._output += _ANSI_RE.sub("", chunk.decode(errors="replace"))
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
                os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc = None
