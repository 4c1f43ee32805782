"""Where the Claude Code CLI is: for the harness's engine and the core's setup-token flow."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Mapping
from pathlib import Path


def claude_cli(env: Mapping[str, str] | None = None) -> str:
    """``HYPERHIVE_CLAUDE_CLI`` or ``claude`` from PATH (nixpkgs' claude-code in a NixOS
    container), else the CLI bundled in the claude-agent-sdk wheel."""
    env = os.environ if env is None else env
    found = shutil.which(env.get("HYPERHIVE_CLAUDE_CLI") or "claude")
    if found:
        return found
    # Located without importing: the SDK costs ~45 MiB an idle process should not pay.
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or spec.origin is None:
        return "claude"
    return str(Path(spec.origin).parent / "_bundled" / "claude")
