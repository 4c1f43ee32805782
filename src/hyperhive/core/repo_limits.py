"""How much an untrusted repository may make its verifying reader (core/object_store.py)
read, inflate, open and keep."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_object: int = 1 << 20  # inflated size of any object, delta base or result
    max_delta: int = 2 << 20  # inflated size of one delta
    max_loose_file: int = 2 << 20
    max_delta_depth: int = 64
    max_packs: int = 64
    max_idx_file: int = 4 << 20  # about 150,000 objects
    max_packed_refs: int = 1 << 20
    max_dir_entries: int = 65536
    budget: int = 64 << 20  # bytes read plus bytes inflated, for the store's life
    cache: int = 8 << 20  # resolved pack objects kept as delta bases
