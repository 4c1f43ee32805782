"""``agent.toml``: the backend-neutral config of one agent, parsed strictly.

The manager writes this file and the operator approves it, so every mistake
must come back as an error that names the field, never as a default quietly
taken. Unknown keys are refused (with a suggestion) because a typo such as
``netwrok = false`` silently ignored would leave an agent on the network.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Final

from hyperhive.core.gateway.budget import Budget
from hyperhive.core.workspace_config import KEYS as WORKSPACE_KEYS
from hyperhive.core.workspace_config import Workspace, parse_workspace
from hyperhive.errors import BadConfig, BadName
from hyperhive.names import MANAGER, OPERATOR, validate_agent_name
from hyperhive.tool_rules import LISTS as TOOLS_KEYS
from hyperhive.tool_rules import ToolPolicy, parse_tools

__all__ = ["AgentConfig", "BadConfig", "Sandbox", "default_agent_toml", "parse_agent_toml"]

ALL: Final = "*"
DEFAULT_ALLOW_SEND: Final = (MANAGER, OPERATOR)
MAX_TEXT: Final = 256 * 1024
MAX_ROLE: Final = 8000
MAX_MEMORY_MB: Final = 1024 * 1024
MAX_RO_BINDS: Final = 32
MAX_BIND_PATH: Final = 1024
# Binding any of these (or a parent of one) would show an agent every other
# agent's state, credentials and sockets.
PROTECTED: Final = ("/run/hyperhive", "/var/lib/hyperhive")
# Printable ASCII without spaces: model ids and aliases such as "sonnet[1m]".
MODEL_RE: Final = re.compile(r"[!-~]{1,200}")
# Bind paths reach nspawn's EXTRA_NSPAWN_FLAGS (shell words, ':' separates
# source and target), so only plain path characters are accepted.
BIND_RE: Final = re.compile(r"/[A-Za-z0-9._+@/-]*")
TOP_KEYS: Final = ("role", "model", "allow_send", "sandbox", "tools", "workspace", "budget")
SANDBOX_KEYS: Final = ("network", "memory_mb", "ro_binds")
BUDGET_KEYS: Final = ("usd_per_day", "tokens_per_day")
# Far above any day's spend; a bigger number is a typo, not a budget.
MAX_BUDGET_USD: Final = 1_000_000
MAX_BUDGET_TOKENS: Final = 10**12


@dataclass(frozen=True, slots=True)
class Sandbox:
    network: bool = True
    memory_mb: int | None = None
    ro_binds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentConfig:
    role: str | None = None
    model: str | None = None
    allow_send: tuple[str, ...] = DEFAULT_ALLOW_SEND
    sandbox: Sandbox = Sandbox()
    tools: ToolPolicy = field(default_factory=ToolPolicy)
    workspace: Workspace = field(default_factory=Workspace)
    budget: Budget = field(default_factory=Budget)


def parse_agent_toml(text: str, *, protected: tuple[str, ...] = PROTECTED) -> AgentConfig:
    """Parse and check ``agent.toml``; ``protected`` adds the real state and run dirs."""
    if not isinstance(text, str):
        raise BadConfig("agent.toml must be text")
    if len(text.encode()) > MAX_TEXT:
        raise BadConfig(f"agent.toml is over {MAX_TEXT // 1024} KiB")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message ends with "(at line L, column C)".
        raise BadConfig(f"agent.toml is not valid TOML: {exc}") from None
    _refuse_unknown(data, TOP_KEYS, "")
    sandbox = data.get("sandbox", {})
    if not isinstance(sandbox, dict):
        raise BadConfig(f"agent.toml: sandbox must be a table (got {_show(sandbox)})")
    _refuse_unknown(sandbox, SANDBOX_KEYS, "sandbox.")
    tools = _table(data, "tools", TOOLS_KEYS)
    workspace = _table(data, "workspace", WORKSPACE_KEYS)
    budget = _table(data, "budget", BUDGET_KEYS)
    return AgentConfig(
        role=_role(data.get("role")),
        model=_model(data.get("model")),
        allow_send=_allow_send(data.get("allow_send")),
        sandbox=Sandbox(
            network=_network(sandbox.get("network", True)),
            memory_mb=_memory(sandbox.get("memory_mb")),
            ro_binds=_ro_binds(sandbox.get("ro_binds", []), protected),
        ),
        tools=parse_tools(tools),
        workspace=parse_workspace(workspace),
        budget=_budget(budget),
    )


def _table(data: dict[str, object], name: str, known: tuple[str, ...]) -> dict[str, object]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise BadConfig(f"agent.toml: {name} must be a table (got {_show(table)})")
    _refuse_unknown(table, known, f"{name}.")
    return table


def default_agent_toml(name: str) -> str:
    """A valid, commented ``agent.toml`` to start from."""
    name = validate_agent_name(name)
    allow = '["*"]' if name == MANAGER else '["hm1nd", "operator"]'
    return f"""\
# agent.toml for {name} (container h-{name}).
# Edit and commit it, then ask for the commit to be applied
# (request_apply_commit); nothing changes until the operator approves.

# Appended to the agent's system prompt.
# role = "You are {name}. You review pull requests."

# The Claude model; unset means the engine's default.
# model = "sonnet"

# Whom {name} may message: agent names, "hm1nd", "operator", or "*" for all.
allow_send = {allow}

[sandbox]
# Set to false to cut the container off the network.
network = true
# Memory limit in MiB; unset means no limit.
# memory_mb = 4096
# Extra host paths mounted read-only at the same place in the container.
# ro_binds = ["/srv/datasets"]

[budget]
# Daily limits (UTC days) on what {name}'s model requests cost; unset means none.
# At 80 % hm1nd is told; at 100 % {name} pauses until the operator raises or resumes it.
# usd_per_day = 5.0
# tokens_per_day = 2000000
"""


def _refuse_unknown(table: dict[str, object], known: tuple[str, ...], prefix: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise BadConfig(f"agent.toml: unknown key '{prefix}{key}'{hint}")


def _role(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadConfig(f"agent.toml: role must be a string (got {_show(value)})")
    if len(value) > MAX_ROLE:
        raise BadConfig(f"agent.toml: role is {len(value)} characters; the limit is {MAX_ROLE}")
    return value if value.strip() else None


def _model(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not MODEL_RE.fullmatch(value):
        raise BadConfig(
            "agent.toml: model must be one word of at most 200 printable characters "
            f"(got {_show(value)})"
        )
    return value


def _allow_send(value: object) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_ALLOW_SEND
    if not isinstance(value, list):
        raise BadConfig(f"agent.toml: allow_send must be a list of names (got {_show(value)})")
    names: list[str] = []
    for i, entry in enumerate(value):
        if entry not in (ALL, OPERATOR, MANAGER):
            try:
                validate_agent_name(entry)
            except BadName as exc:
                raise BadConfig(f"agent.toml: allow_send[{i}]: {exc.message}") from None
        if entry not in names:
            names.append(entry)
    return tuple(names)


def _network(value: object) -> bool:
    if not isinstance(value, bool):
        raise BadConfig(f"agent.toml: sandbox.network must be true or false (got {_show(value)})")
    return value


def _memory(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BadConfig(
            f"agent.toml: sandbox.memory_mb must be a positive integer (got {_show(value)})"
        )
    if value > MAX_MEMORY_MB:
        raise BadConfig(f"agent.toml: sandbox.memory_mb must be at most {MAX_MEMORY_MB}")
    return value


def _ro_binds(value: object, protected: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise BadConfig(
            f"agent.toml: sandbox.ro_binds must be a list of paths (got {_show(value)})"
        )
    if len(value) > MAX_RO_BINDS:
        raise BadConfig(f"agent.toml: sandbox.ro_binds has more than {MAX_RO_BINDS} entries")
    binds: list[str] = []
    for i, entry in enumerate(value):
        where = f"agent.toml: sandbox.ro_binds[{i}]"
        if not isinstance(entry, str) or not entry.startswith("/"):
            raise BadConfig(f"{where} must be an absolute path (got {_show(entry)})")
        if len(entry) > MAX_BIND_PATH or not BIND_RE.fullmatch(entry):
            raise BadConfig(
                f"{where} may use only letters, digits and . _ + @ - / (got {_show(entry)})"
            )
        path = PurePosixPath(entry)
        if ".." in path.parts:
            raise BadConfig(f"{where} must not contain '..' (got {_show(entry)})")
        for root in protected:
            guarded = PurePosixPath(root)
            if path == guarded or guarded in path.parents or path in guarded.parents:
                raise BadConfig(f"{where}: {entry} would expose {root}, which agents never see")
        if str(path) not in binds:
            binds.append(str(path))
    return tuple(binds)


def _budget(table: dict[str, object]) -> Budget:
    usd, tokens = table.get("usd_per_day"), table.get("tokens_per_day")
    if usd is not None and (
        isinstance(usd, bool)
        or not isinstance(usd, int | float)
        or not 0 < usd <= MAX_BUDGET_USD  # NaN fails this too
    ):
        raise BadConfig(
            "agent.toml: budget.usd_per_day must be a positive number of dollars, "
            f"at most {MAX_BUDGET_USD} (got {_show(usd)})"
        )
    if tokens is not None and (
        isinstance(tokens, bool)
        or not isinstance(tokens, int)
        or not 0 < tokens <= MAX_BUDGET_TOKENS
    ):
        raise BadConfig(
            "agent.toml: budget.tokens_per_day must be a positive integer, "
            f"at most {MAX_BUDGET_TOKENS} (got {_show(tokens)})"
        )
    return Budget.of(float(usd) if usd is not None else None, tokens)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
