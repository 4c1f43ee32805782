"""The operator's ``/model`` choice, persisted in ``/state/hyperhive-model``.

A failure to persist is reported, not fatal: the runtime override still
applies; it just will not survive a restart.
"""

from __future__ import annotations

import os
from pathlib import Path

from hyperhive.agent.layout import read_model


class ModelFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str | None:
        """The saved choice, if any; raises ``OSError`` if it is there but unreadable."""
        return read_model(self.path)

    def write(self, model: str | None) -> None:
        """Persist (or with ``None`` forget) the choice; raises ``OSError`` on failure."""
        if model is None:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(model + "\n")
        os.replace(tmp, self.path)
