"""``hive config show`` and ``hive config reload`` for people: the settings in force in
hive.toml's own shape, each value the env pinned marked so (``--json`` gives the op's
answer as it is)."""

from __future__ import annotations

import json
from typing import Any, Final

from hyperhive.cli.render import inline

SINKS: Final = ("webhook", "ntfy", "command")


def _value(value: object) -> str:
    return "none" if value is None else json.dumps(value, ensure_ascii=True)


def _pairs(where: str, table: dict[str, Any], env: dict[str, str]) -> list[str]:
    lines = []
    for key, value in table.items():
        if where == "notify" and key in SINKS:
            continue  # arrays of tables come after the plain keys
        pinned = env.get(f"{where}.{key}")
        note = f"  # env {pinned}" if pinned else ""
        lines.append(f"{key} = {_value(value)}{note}")
    return lines


def show(c: dict[str, Any]) -> str:
    env: dict[str, str] = c.get("env", {})
    where = "" if c.get("file_exists") else " (not found: the defaults)"
    lines = [f"# {c['file']}{where}"]
    settings: dict[str, Any] = c["settings"]
    for name in ("budget", "gateway", "stall", "notify"):
        lines += ["", f"[{name}]", *_pairs(name, settings[name], env)]
    for kind in SINKS:
        for sink in settings["notify"][kind]:
            lines += ["", f"[[notify.{kind}]]", *_pairs(f"notify.{kind}", sink, {})]
    for rule in settings["policy"]:
        found = {k: v for k, v in rule.items() if v is not None}
        lines += ["", "[[policy]]", *_pairs("policy", found, {})]
    return "\n".join(lines)


def reloaded(r: dict[str, Any]) -> str:
    changed = ", ".join(r["changed"]) or "nothing changed"
    return inline(f"reloaded {r['file']}: {changed}")
