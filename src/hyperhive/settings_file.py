"""``hive.toml``, the operator's settings file, parsed strictly into :class:`Settings`.

Every mistake is a :class:`ConfigError` that names the field as it is written in the
file (``hive.toml: notify.webhook[0].url: expected http(s)://host[:port][/path]``);
arrays of tables are counted from 0. A missing file is the defaults. Secrets may be
given inline (then the file must be the owner's alone) or as ``secret_file`` /
``token_file``, read at load, relative to the file's directory, and refused when
others may read them. The schema is in the README ("Configuration file").
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar, get_args

from hyperhive.errors import ConfigError
from hyperhive.settings import (
    CommandSink,
    NotifySettings,
    NtfySink,
    PolicyDecision,
    PolicyKind,
    PolicyRule,
    Settings,
    Sink,
    StallSettings,
    WebhookSink,
)
from hyperhive.settings_table import MAX_TEXT, Table

__all__ = ["MAX_FILE", "MAX_RULES", "MAX_SINKS", "load_settings", "parse_settings"]

MAX_FILE: Final = 1024 * 1024
MAX_SECRET_FILE: Final = 64 * 1024
MAX_SINKS: Final = 64
MAX_RULES: Final = 256
MAX_ARGV: Final = 64
NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DOTTED: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")
_TOP: Final = ("budget", "gateway", "stall", "notify", "policy")
_SINK_KINDS: Final = ("webhook", "ntfy", "command")
_KINDS: Final[tuple[str, ...]] = get_args(PolicyKind)
_DECISIONS: Final[tuple[str, ...]] = get_args(PolicyDecision)
# Which conditions fit which kind; agent and requester fit every kind.
_ONLY_FOR: Final = {"fields": "apply_commit", "max_agents": "spawn", "tool": "tool_use"}
_ONLY_FOR_INPUT: Final = "tool_use"
MAX_TIMEOUT: Final = 600.0
_T = TypeVar("_T")


def load_settings(path: Path) -> Settings:
    """``path`` parsed; the defaults when it does not exist."""
    source = path.name
    try:
        found = _read_regular(path, MAX_FILE)
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    if found is None:
        raise ConfigError(f"{path}: not a regular file")
    raw, mode = found
    if len(raw) > MAX_FILE:
        raise ConfigError(f"{path}: over {MAX_FILE // 1024} KiB")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    parsed = _Parser(source, path.parent)
    settings = parsed.settings(text)
    if parsed.inline_secret is not None and mode & 0o077:
        raise ConfigError(
            f"{source}: {parsed.inline_secret} is inline and {path} is readable by others: "
            f"chmod 600 {path} (or use a secret file)"
        )
    return settings


def parse_settings(text: str, *, source: str, base_dir: Path | None = None) -> Settings:
    """``text`` as hive.toml; secret files relative to ``base_dir`` (default: cwd)."""
    return _Parser(source, base_dir if base_dir is not None else Path.cwd()).settings(text)


@dataclass
class _Parser:
    source: str
    base_dir: Path
    # The first inline secret's field, for the file-mode check of load_settings.
    inline_secret: str | None = None
    _sink_names: set[str] = field(default_factory=set)
    _rule_names: set[str] = field(default_factory=set)

    def settings(self, text: str) -> Settings:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.source}: not valid TOML: {exc}") from None
        for key in data:
            if key not in _TOP:
                close = difflib.get_close_matches(key, _TOP, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{self.source}: {key}: unknown table{hint}")
        top = Table(data, "", self.source, _TOP)
        budget = top.sub("budget", ("usd_per_day", "tokens_per_day"))
        gateway = top.sub("gateway", ("concurrency", "per_agent"))
        return Settings(
            notify=self._notify(top.sub("notify", (*_NOTIFY_KEYS, *_SINK_KINDS))),
            policies=self._policies(top),
            stall=self._stall(top.sub("stall", ("thinking", "approval", "lease"))),
            budget_usd_per_day=budget.number("usd_per_day", 1_000_000),
            budget_tokens_per_day=budget.integer("tokens_per_day"),
            gateway_concurrency=gateway.integer("concurrency", 1, 10_000),
            gateway_per_agent=gateway.integer("per_agent", 1, 10_000),
        )

    def _stall(self, t: Table) -> StallSettings:
        default = StallSettings()
        return StallSettings(
            *(
                t.seconds(key, off=True) if t.has(key) else getattr(default, key)
                for key in ("thinking", "approval", "lease")
            )
        )

    def _notify(self, t: Table) -> NotifySettings:
        d = NotifySettings()
        sinks: list[Sink] = []
        for kind in _SINK_KINDS:
            for sink in t.tables(kind, _SINK_KEYS[kind], MAX_SINKS):
                sinks.append(self._sink(kind, sink))
        if len(sinks) > MAX_SINKS:
            raise t.fail("webhook", f"more than {MAX_SINKS} sinks in all")
        first = t.seconds("backoff_first") if t.has("backoff_first") else d.backoff_first
        most = t.seconds("backoff_max") if t.has("backoff_max") else d.backoff_max
        assert first is not None and most is not None
        if most < first:
            raise t.fail("backoff_max", f"must be at least backoff_first ({first:g} s)")
        window = t.seconds("digest_window") if t.has("digest_window") else d.digest_window
        assert window is not None
        return NotifySettings(
            sinks=tuple(sinks),
            max_tries=_or(t.integer("max_tries", 1, 1000), d.max_tries),
            backoff_first=first,
            backoff_max=most,
            digest_after=_or(t.integer("digest_after", 1, 1000), d.digest_after),
            digest_window=window,
            dashboard_url=t.url("dashboard_url") if t.has("dashboard_url") else None,
        )

    def _unique(self, t: Table, names: set[str]) -> str:
        name = t.required("name", pattern=NAME)
        if name in names:
            raise t.fail("name", f"{name!r} is used twice")
        names.add(name)
        return name

    def _timeout(self, t: Table) -> float | None:
        return t.seconds("timeout", high=MAX_TIMEOUT) if t.has("timeout") else None

    def _sink(self, kind: str, t: Table) -> Sink:
        name = self._unique(t, self._sink_names)
        if kind == "webhook":
            return WebhookSink(
                name,
                t.url("url"),
                secret=self._secret(t, "secret"),
                events=t.events(),
                timeout=_or(self._timeout(t), 10.0),
            )
        if kind == "ntfy":
            return NtfySink(
                name,
                t.url("url", topic=True),
                token=self._secret(t, "token"),
                priority=t.integer("priority", 1, 5),
                tags=tuple(t.strings("tags", 16, NAME)) if t.has("tags") else (),
                events=t.events(),
                timeout=_or(self._timeout(t), 10.0),
            )
        argv = t.strings("argv", MAX_ARGV)
        if not argv[0]:
            raise t.fail("argv", "the program (argv[0]) is empty")
        return CommandSink(
            name,
            tuple(argv),
            events=t.events(),
            timeout=_or(self._timeout(t), 30.0),
        )

    def _secret(self, t: Table, key: str) -> str | None:
        inline, file_key = t.has(key), t.has(f"{key}_file")
        if inline and file_key:
            raise t.fail(key, f"give {key} or {key}_file, not both")
        if inline:
            value = t.data[key]
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
                raise t.fail(key, f"expected a non-empty string up to {MAX_TEXT} characters")
            if self.inline_secret is None:
                self.inline_secret = t.name(key)
            return value
        if file_key:
            path = self.base_dir / t.required(f"{key}_file")
            return _read_secret(path, t, f"{key}_file")
        return None

    def _policies(self, top: Table) -> tuple[PolicyRule, ...]:
        rules = [self._rule(t) for t in top.tables("policy", _RULE_KEYS, MAX_RULES)]
        return tuple(rules)

    def _rule(self, t: Table) -> PolicyRule:
        name = self._unique(t, self._rule_names)
        kind = t.choice("kind", _KINDS)
        decision = t.choice("decision", _DECISIONS)
        for key, fits in (*_ONLY_FOR.items(), ("input", _ONLY_FOR_INPUT)):
            if t.has(key) and kind != fits:
                raise t.fail(key, f'only for kind = "{fits}" (this rule is "{kind}")')
        fields = frozenset(t.strings("fields", 256, DOTTED)) if t.has("fields") else None
        pattern = t.text("input")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise t.fail("input", f"not a regular expression: {exc}") from None
        return PolicyRule(
            name,
            kind,  # type: ignore[arg-type]  # checked against PolicyKind above
            decision,  # type: ignore[arg-type]
            agent=t.text("agent"),
            requester=t.text("requester"),
            fields=fields,
            max_agents=t.integer("max_agents", 1, 100_000),
            tool=t.text("tool"),
            input=pattern,
        )


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _read_secret(path: Path, t: Table, key: str) -> str:
    """A secret file's first line; never its content in an error."""
    try:
        found = _read_regular(path, MAX_SECRET_FILE)
    except OSError as exc:
        raise t.fail(key, f"cannot read {path} ({exc.strerror})") from None
    if found is None:
        raise t.fail(key, f"{path} is not a regular file")
    raw, mode = found
    if mode & 0o077:
        raise t.fail(key, f"{path} is readable by others: chmod 600 {path}")
    if len(raw) > MAX_SECRET_FILE:
        raise t.fail(key, f"{path} is over {MAX_SECRET_FILE // 1024} KiB")
    try:
        lines = raw.decode().strip().splitlines()
    except UnicodeDecodeError:
        raise t.fail(key, f"{path} is not UTF-8 text") from None
    if not lines or not lines[0].strip():
        raise t.fail(key, f"{path} is empty")
    return lines[0].strip()


def _read_regular(path: Path, limit: int) -> tuple[bytes, int] | None:
    """Up to ``limit`` + 1 bytes of ``path`` and its mode, from one open (no swap between
    the check and the read); None when it is not a regular file. O_NONBLOCK: a FIFO put
    there must not hang the daemon."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            return None
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 65536))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), mode
    finally:
        os.close(fd)


def _keys(*names: Iterable[str]) -> tuple[str, ...]:
    return tuple(n for group in names for n in group)


_NOTIFY_KEYS: Final = (
    "max_tries",
    "backoff_first",
    "backoff_max",
    "digest_after",
    "digest_window",
    "dashboard_url",
)
_SINK_COMMON: Final = ("name", "events", "timeout")
_SINK_KEYS: Final = {
    "webhook": _keys(_SINK_COMMON, ("url", "secret", "secret_file")),
    "ntfy": _keys(_SINK_COMMON, ("url", "token", "token_file", "priority", "tags")),
    "command": _keys(_SINK_COMMON, ("argv",)),
}
_RULE_KEYS: Final = (
    "name",
    "kind",
    "decision",
    "agent",
    "requester",
    "fields",
    "max_agents",
    "tool",
    "input",
)
