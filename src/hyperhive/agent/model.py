"""The operator's ``/model`` choice, persisted in ``/state/hyperhive-model``.

A failure to persist is reported, not fatal: the runtime override still
applies; it just will not survive a restart.
"""

from __future__ import annotations

import os
from pathlib import Path


class ModelFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str | None:
        try:
            value = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        return value or None

    def write(self, model: str | None) -> None:
        """Persist (or with ``None`` forget) the choice; raises ``OSError`` on failure."""
        if model is None:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(model + "\n")
        os.replace(tmp, self.path)
