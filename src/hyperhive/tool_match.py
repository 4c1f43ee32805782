"""Does a tool call match a permission rule? Claude Code's common rule forms.

- a bare tool name (``Bash``, ``Read``; ``Tool(*)`` is the same);
- ``Bash(prefix:*)`` (the command's words start with the prefix's words),
  ``Bash(exact command)`` and ``Bash(npm * --save)`` (``*`` is any text);
- file rules with gitignore-style globs: ``Edit(...)`` covers every tool that
  edits files, ``Read(...)`` every tool that reads them; ``//x`` is the
  absolute path ``/x``, ``~/x`` is under the home dir, ``/x``, ``./x`` and
  ``x/y`` are relative to the cwd (``/work``), and a slash-less ``*.env``
  matches at any depth; a rule naming a directory covers what is inside it;
- ``WebFetch(domain:host)`` (``domain:*.host`` for its subdomains);
- ``mcp__server`` covers every tool of that server.

A match is three-valued: None means the rule's form cannot be checked against
this call (an unknown specifier, a command that does not parse). Deny and ask
rules count None as a match and allow rules do not, so doubt never opens a
door. A compound command hits a deny or ask rule when any part does, and is
allowed by specifiers only when every part is and no part nests a command or
redirects (Claude Code asks about those too). Pure code.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from hyperhive.tool_rules import Rule

FILE_EDIT: Final = frozenset({"Edit", "Write", "NotebookEdit", "MultiEdit"})
FILE_READ: Final = frozenset({"Read", "Glob", "Grep", "LS", "NotebookRead"})
ALIASES: Final = {"Task": "Agent"}  # the CLI's init message still says Task
PUNCTUATION: Final = "();<>|&\n"
# A command inside the command: $(...), `...`, <(...), >(...).
NESTED: Final = re.compile(r"\$\(|`|<\(|>\(")
NESTED_TEXT: Final = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")
ASSIGNMENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
WHOLE: Final = "*"


@dataclass(frozen=True, slots=True)
class Where:
    """What relative rule paths and relative tool paths mean."""

    cwd: str = "/work"
    home: str = "/root"


def _tool(name: str) -> str:
    return ALIASES.get(name, name)


def matches(rule: Rule, tool: str, tool_input: dict[str, Any], where: Where) -> bool | None:
    """Whether ``rule`` covers this call; for Bash, whether any part of it does."""
    tool, rule_tool, spec = _tool(tool), _tool(rule.tool), rule.specifier
    if rule_tool.startswith("mcp__"):
        if spec is not None:
            return None
        return tool == rule_tool or (
            "__" not in rule_tool[5:] and tool.startswith(rule_tool + "__")
        )
    if spec is None or spec == WHOLE:
        return tool == rule_tool
    if rule_tool == "Bash":
        return _bash_hits(spec, tool_input) if tool == "Bash" else False
    if rule_tool in FILE_EDIT | FILE_READ:
        family = {"Edit": FILE_EDIT, "Read": FILE_READ}.get(rule_tool, frozenset({rule_tool}))
        return _path_matches(spec, tool, tool_input, where) if tool in family else False
    if rule_tool == "WebFetch":
        return _domain_matches(spec, tool_input) if tool == "WebFetch" else False
    return None if tool == rule_tool else False


def covered(
    rules: tuple[Rule, ...], tool: str, tool_input: dict[str, Any], where: Where
) -> Rule | None:
    """The allow rule that permits this call, if one does (doubt permits nothing)."""
    for rule in rules:
        whole = rule.specifier in (None, WHOLE)
        if _tool(rule.tool) == "Bash" and _tool(tool) == "Bash" and not whole:
            continue  # prefix rules are judged together below: each part needs one
        if matches(rule, tool, tool_input, where) is True:
            return rule
    if _tool(tool) == "Bash":
        return _bash_covered(rules, tool_input)
    return None


# -- Bash ---------------------------------------------------------------------


def _tokens(command: str) -> list[str] | None:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=PUNCTUATION)
    lexer.whitespace = " \t\r"  # a newline ends a command, like ';'
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # an unclosed quote
        return None


def _is_operator(token: str) -> bool:
    return bool(token) and all(c in PUNCTUATION for c in token)


def _parts(tokens: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for token in tokens:
        if _is_operator(token):
            parts.append([])
        else:
            parts[-1].append(token)
    return [p for p in parts if p]


def _spec_matches(spec: str, words: list[str]) -> bool:
    if spec.endswith(":*"):
        prefix = shlex.split(spec[:-2])
        return words[: len(prefix)] == prefix
    if spec.endswith(" *") and spec.count("*") == 1:
        prefix = shlex.split(spec[:-2])  # "ls *" is "ls" and "ls -la", never "lsof"
        return words[: len(prefix)] == prefix
    if "*" in spec:
        pattern = ".*".join(re.escape(piece) for piece in spec.split("*"))
        return re.fullmatch(pattern, shlex.join(words), re.DOTALL) is not None
    try:
        return words == shlex.split(spec)
    except ValueError:
        return False


def _bash_hits(spec: str, tool_input: dict[str, Any]) -> bool | None:
    command = tool_input.get("command")
    if not isinstance(command, str):
        return None
    texts = [command] + [a or b for a, b in NESTED_TEXT.findall(command)]
    for text in texts:
        tokens = _tokens(text)
        if tokens is None:
            return None
        for words in _parts(tokens):
            if _spec_matches(spec, words) or _spec_matches(spec, _without_assignments(words)):
                return True
    return False


def _without_assignments(words: list[str]) -> list[str]:
    """The command itself: ``FOO=1 rm x`` still runs ``rm``."""
    i = 0
    while i < len(words) - 1 and ASSIGNMENT.fullmatch(words[i]):
        i += 1
    return words[i:]


def _bash_covered(rules: tuple[Rule, ...], tool_input: dict[str, Any]) -> Rule | None:
    specs = [r for r in rules if _tool(r.tool) == "Bash" and r.specifier not in (None, WHOLE)]
    command = tool_input.get("command")
    if not specs or not isinstance(command, str) or NESTED.search(command):
        return None
    tokens = _tokens(command)
    if tokens is None or any(_is_operator(t) and set(t) & set("<>()") for t in tokens):
        return None
    first: Rule | None = None
    for words in _parts(tokens):
        rule = next((r for r in specs if _spec_matches(str(r.specifier), words)), None)
        if rule is None:
            return None
        first = first or rule
    return first


# -- files and domains ----------------------------------------------------------


def _path_of(tool: str, tool_input: dict[str, Any], where: Where) -> str | None:
    if tool in ("Glob", "Grep", "LS"):
        pattern = tool_input.get("pattern")
        if (
            tool == "Glob"
            and isinstance(pattern, str)
            and (pattern.startswith(("/", "~")) or ".." in pattern)
        ):
            return None  # the pattern itself leaves the searched directory
        value = tool_input.get("path") or where.cwd
    else:
        value = tool_input.get("notebook_path" if tool == "NotebookEdit" else "file_path")
    if not isinstance(value, str) or not value:
        return None
    if value == "~" or value.startswith("~/"):
        value = where.home + value[1:]
    return posixpath.normpath(posixpath.join(where.cwd, value))


def _glob_regex(pattern: str) -> str:
    out = []
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
            continue
        piece = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part)
        out.append(piece if last else piece + "/")
    return "".join(out)


def _path_matches(spec: str, tool: str, tool_input: dict[str, Any], where: Where) -> bool | None:
    path = _path_of(tool, tool_input, where)
    if path is None:
        return None
    if spec.startswith("//"):
        root, pattern = "/", spec[2:]
    elif spec.startswith("~/"):
        root, pattern = where.home, spec[2:]
    else:
        root, pattern = where.cwd, spec.removeprefix("./").removeprefix("/")
    pattern = pattern.rstrip("/")
    if not pattern:
        return None
    root = posixpath.normpath(root)
    if path != root and not path.startswith(root.rstrip("/") + "/"):
        return False
    relative = posixpath.relpath(path, root)
    # gitignore: a pattern with no slash matches a name at any depth, and a
    # matching directory takes everything inside it along.
    anywhere = "/" not in spec
    regex = ("(?:.*/)?" if anywhere else "") + _glob_regex(pattern) + "(?:/.*)?"
    return re.fullmatch(regex, relative, re.DOTALL) is not None


def _domain_matches(spec: str, tool_input: dict[str, Any]) -> bool | None:
    url = tool_input.get("url")
    if not spec.startswith("domain:") or not isinstance(url, str):
        return None
    host = urlsplit(url).hostname
    if host is None:
        return None
    domain = spec.removeprefix("domain:").lower()
    if domain.startswith("*."):
        return host.endswith(domain[1:])
    return host == domain
