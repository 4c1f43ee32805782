"""Rate limiting by digest, decided without I/O: given what is due for one sink and
when it was last sent to, send the next row alone, fold the due rows into one digest,
or wait until the window has room.

At most ``after`` sends (digests included) reach a sink within any ``window`` seconds;
when more is due than the window has room for, everything due goes as one digest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hyperhive.core.notify.events import Notification, make

FIRST: Final = 10  # the titles a digest lists; the counts cover the rest


@dataclass(frozen=True, slots=True)
class Due:
    id: int
    kind: str


@dataclass(frozen=True, slots=True)
class Send:
    id: int


@dataclass(frozen=True, slots=True)
class Fold:
    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Wait:
    until: float


Action = Send | Fold | Wait


def recent(sent: Sequence[float], now: float, window: float) -> list[float]:
    """The send times still inside the window, oldest first."""
    return sorted(t for t in sent if t > now - window)


def decide(
    due: Sequence[Due], sent: Sequence[float], now: float, after: int, window: float
) -> Action | None:
    """``due`` oldest first; ``sent``: this sink's recent send times. None: nothing due."""
    if not due:
        return None
    inside = recent(sent, now, window)
    room = max(after, 1) - len(inside)
    if room <= 0:
        # One more send fits once enough of the oldest sends have left the window.
        return Wait(inside[-max(after, 1)] + window)
    if len(due) <= room:
        return Send(due[0].id)
    return Fold(tuple(d.id for d in due))


@dataclass(frozen=True, slots=True)
class Folded:
    """A row going into a digest; ``digest`` is the data of a row that is one itself."""

    kind: str
    title: str
    link: str
    digest: dict[str, Any] | None = None


def digest_of(items: Sequence[Folded]) -> Notification:
    """One notification standing for ``items`` (earlier digests merged in): counts by
    kind, and the first few titles with their links."""
    kinds: Counter[str] = Counter()
    first: list[dict[str, str]] = []
    for item in items:
        if item.kind == "digest" and item.digest is not None:
            kinds.update({str(k): int(n) for k, n in item.digest.get("kinds", {}).items()})
            first.extend(item.digest.get("first", []))
        else:
            kinds[item.kind] += 1
            first.append({"kind": item.kind, "title": item.title, "link": item.link})
    first = first[:FIRST]
    count = sum(kinds.values())
    lines = [", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))]
    lines += [f"- {f['title']}" for f in first]
    if count > len(first):
        lines.append(f"… and {count - len(first)} more on the dashboard")
    data = {"count": count, "kinds": dict(sorted(kinds.items())), "first": first}
    return make("digest", f"{count} notifications", "\n".join(lines), "/", data)
