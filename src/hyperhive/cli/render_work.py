"""``hive work``: an agent's branch for people (``--json`` gives the op's answer as is).

Subjects, names, paths and the diff are the agent's words: single lines go
through :func:`~hyperhive.cli.render.inline`, and ``main`` escapes every line printed.
"""

from __future__ import annotations

from typing import Any

from hyperhive.cli.render import inline, table


def work(v: dict[str, Any]) -> str:
    head = inline(
        f"{v['name']}: {v['branch']} from {v['base']} at {v['base_commit'][:12]} ({v['repo']})"
    )
    if v.get("tip") is None:
        return f"{head}\n(the clone has no branch {inline(v['branch'])})"
    lines = [head, inline(f"tip {v['tip']}, {v['ahead']} commit(s) ahead of {v['base']}")]
    if v["commits"]:
        rows = [
            (c["sha"][:12], c["date"], f"{c['author']} <{c['email']}>", c["subject"])
            for c in v["commits"]
        ]
        lines += ["", table(rows, ("COMMIT", "DATE", "AUTHOR", "SUBJECT"))]
        if v["ahead"] > len(v["commits"]):
            lines.append(f"… and {v['ahead'] - len(v['commits'])} older")
    stat = v.get("stat") or {}
    if stat.get("files"):
        lines += ["", v["diffstat"].rstrip("\n"), "", v["diff"].rstrip("\n")]
    else:
        lines += ["", "(no changes from the base)"]
    return "\n".join(lines)


def fetched(f: dict[str, Any]) -> str:
    was = f"(was {f['previous'][:12]})" if f.get("previous") else "(new)"
    return inline(
        f"{f['repo']}: {f['branch']} → {f['tip'][:12]} {was}, "
        f"{f['ahead']} commit(s) ahead; merge it from there"
    )
