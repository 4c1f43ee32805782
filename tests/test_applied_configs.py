"""A config approved for another host's agent, as the shared store keeps it: any bytes
round-trip, a tree over the bound is refused before it is stored, a row is kept once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperhive.core.applied_configs import (
    MAX_ENCODED,
    AppliedConfigs,
    BadRecordedConfig,
    decode_files,
    encode_files,
)
from hyperhive.core.db import Database, open_store
from hyperhive.core.proposal import Files, Pin, files_digest
from hyperhive.errors import TooLarge

pytestmark = pytest.mark.usefixtures("both_stores")

FILES: Files = {
    "agent.toml": ("100644", b'role = "reviewer"\n'),
    "bin/run": ("100755", bytes(range(256))),  # not text: kept exactly all the same
}


@pytest.fixture
def store(store_target: str | Path) -> Iterator[Database]:
    db = open_store(store_target)
    try:
        yield db
    finally:
        db.close()


def test_files_of_any_bytes_come_back_exactly_as_they_were_recorded() -> None:
    assert decode_files(encode_files(FILES)) == FILES


def test_a_tree_over_the_bound_is_refused_before_it_reaches_the_store() -> None:
    big: Files = {"agent.toml": ("100644", b"x" * MAX_ENCODED)}
    with pytest.raises(TooLarge, match="KiB"):
        encode_files(big)


def test_a_row_that_is_not_an_encoding_of_files_is_refused_as_unreadable() -> None:
    for text in ("not json", '{"a": ["100644", "@@@"]}', '{"a": 1}'):
        with pytest.raises(BadRecordedConfig):
            decode_files(text)


def test_a_config_is_recorded_once_for_its_approval(store: Database) -> None:
    configs = AppliedConfigs(store, clock=lambda: 1.0)
    pin = Pin("a" * 40, "b" * 40, files_digest(FILES))
    configs.record(7, "bob", pin, FILES)
    configs.record(7, "bob", pin, {"agent.toml": ("100644", b"other")})  # a second pass
    kept = configs.get(7)
    assert kept is not None
    assert (kept.agent, kept.pin, kept.files, kept.created_at) == ("bob", pin, FILES, 1.0)
    assert configs.get(8) is None
