"""``hive-m1nd`` (``python -m hyperhive.daemons.m1nd``): the manager agent — the harness of
:mod:`hyperhive.daemons.ag3nt` with the manager's tools and prompt."""

from __future__ import annotations

import sys

from hyperhive.daemons.ag3nt import run


def main(argv: list[str] | None = None) -> int:
    return run("manager", argv)


if __name__ == "__main__":
    sys.exit(main())
