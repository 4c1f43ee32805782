"""Attacks on the verifying object reader, built the way a hostile manager would
build them: by writing files into its own ``.git``. Each must be refused with
BadRepo, within the memory bound, without blocking, and without echoing what
was read.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import threading
import tracemalloc
import zlib
from pathlib import Path

import pytest

from hyperhive.core.object_store import (
    BadRepo,
    CorruptObject,
    Limits,
    MissingObject,
    ObjectStore,
    RepoLimit,
)
from support.git_repo import MiB, Repo, history, matches_git, new_repo, overwrite, refusal


@pytest.fixture
def repo(short_dir: Path) -> Repo:
    return new_repo(short_dir / "repo")


def test_a_loose_blob_rewritten_under_its_name_is_refused_as_corrupt(repo: Repo) -> None:
    repo.commit({"agent.toml": 'allow_send = ["hm1nd"]\n'}, "safe")
    blob = repo.rev("HEAD:agent.toml")
    evil = b'allow_send = ["*"]\n'
    overwrite(repo.loose(blob), zlib.compress(b"blob %d\0" % len(evil) + evil))
    error = refusal(repo.git_dir, lambda store: store.read(blob))
    assert isinstance(error, CorruptObject)
    assert error.message == (
        f"object {blob} is corrupt: its content does not hash to its name"
        f" (objects/{blob[:2]}/{blob[2:]})"
    )


@pytest.mark.parametrize("which", ["whole", "delta"])
def test_a_flipped_byte_inside_a_pack_entry_is_refused(repo: Repo, which: str) -> None:
    history(repo, 8)
    repo.git("repack", "-adf", "-q")
    row = next(r for r in repo.packed() if r[1] == "blob" and (len(r) == 7) == (which == "delta"))
    sha, size_in_pack, offset = row[0], int(row[3]), int(row[4])
    data = bytearray(repo.packs()[0].read_bytes())
    data[offset + size_in_pack // 2] ^= 0x20
    overwrite(repo.packs()[0], bytes(data))
    error = refusal(repo.git_dir, lambda store: store.read(sha))
    assert isinstance(error, CorruptObject)
    assert error.message.startswith(f"object {sha} is corrupt")


def test_an_index_entry_pointing_at_another_objects_data_is_refused(repo: Repo) -> None:
    history(repo, 3)
    repo.git("repack", "-adf", "-q")
    idx = repo.packs()[0].with_suffix(".idx")
    data = bytearray(idx.read_bytes())
    offsets = 8 + 1024 + 24 * struct.unpack_from(">I", data, 8 + 255 * 4)[0]
    data[offsets : offsets + 8] = data[offsets + 4 : offsets + 8] + data[offsets : offsets + 4]
    data[-20:] = hashlib.sha1(bytes(data[:-20])).digest()
    overwrite(idx, bytes(data))
    sha = bytes(data[8 + 1024 : 8 + 1024 + 20]).hex()
    assert "does not hash to its name" in refusal(repo.git_dir, lambda s: s.read(sha)).message
    overwrite(idx, bytes(data[:-1]) + bytes([data[-1] ^ 1]))
    assert "checksum does not match" in refusal(repo.git_dir, lambda s: s.read(sha)).message


@pytest.mark.parametrize("which", ["loose object", "fan-out dir", "objects", ".git", "gitdir"])
def test_a_symlink_anywhere_on_the_path_is_refused_even_to_the_right_bytes(
    repo: Repo, short_dir: Path, which: str
) -> None:
    sha = history(repo, 1)[0]
    paths = {
        "loose object": repo.loose(sha),
        "fan-out dir": repo.loose(sha).parent,
        "objects": repo.git_dir / "objects",
        ".git": repo.git_dir,
        "gitdir": repo.git_dir,
    }
    moved = paths[which]
    moved.rename(short_dir / "elsewhere")
    if which == "gitdir":  # a file saying where the real directory is, as worktrees have
        moved.write_text(f"gitdir: {short_dir / 'elsewhere'}\n")
    else:
        moved.symlink_to(short_dir / "elsewhere")
    what = (
        moved.relative_to(repo.git_dir).as_posix() if moved != repo.git_dir else "the git directory"
    )
    error = refusal(repo.git_dir, lambda store: store.read(sha))
    assert error.message == f"{what} is " + (
        "not a directory" if which == "gitdir" else "a symlink"
    )
    if which == "loose object":
        with ObjectStore(repo.git_dir) as store:
            assert store.resolve(sha[:8]) == sha  # it exists (lstat); it cannot be read


SECRETS = ["root:$6$secret-hash:19000::::::", "db_password = hunter2"]


@pytest.mark.parametrize("shape", ["file", "host symlink", "dangling symlink", "info symlink"])
def test_alternates_are_refused_without_echoing_what_they_point_at(
    repo: Repo, short_dir: Path, shape: str
) -> None:
    history(repo, 1)
    host = short_dir / "host-shadow"
    host.write_text("\n".join(SECRETS) + "\n")
    info = repo.git_dir / "objects" / "info"
    info.mkdir(exist_ok=True)
    if shape == "file":
        (info / "alternates").write_text(f"{short_dir}/other/objects\n")
    elif shape == "host symlink":
        (info / "alternates").symlink_to(host)
    elif shape == "dangling symlink":
        (info / "alternates").symlink_to(short_dir / "nothing-here")
    else:
        (short_dir / "hostinfo").mkdir()
        (short_dir / "hostinfo" / "alternates").symlink_to(host)
        info.rmdir()
        info.symlink_to(short_dir / "hostinfo")
    error = refusal(repo.git_dir, lambda store: None)
    assert error.message.startswith("objects/info")
    assert not any(secret in error.message for secret in SECRETS)
    assert str(short_dir) not in error.message


@pytest.mark.parametrize(
    "where",
    ["refs/replace/x", "packed-refs", "info/grafts", "shallow", "objects/info/http-alternates",
     "commondir", "refs/replace"],
)  # fmt: skip
def test_files_that_rewrite_history_or_point_elsewhere_are_refused(repo: Repo, where: str) -> None:
    head = history(repo, 2)[-1]
    repo.git("pack-refs", "--all")
    (repo.git_dir / "refs" / "replace").mkdir()
    ObjectStore(repo.git_dir).close()  # ordinary packed refs and an empty dir are fine
    path = repo.git_dir / where
    path.parent.mkdir(parents=True, exist_ok=True)
    if where == "packed-refs":
        overwrite(path, f"# pack-refs with: peeled\n{head} refs/replace/{head}\n".encode())
    elif where == "refs/replace":
        path.rmdir()
        path.symlink_to(repo.git_dir / "refs" / "heads")
    else:
        path.write_text(f"{head}\n")
    assert refusal(repo.git_dir, lambda store: None).message.startswith(where.removesuffix("/x"))


@pytest.mark.parametrize("kind", ["/dev/zero symlink", "fifo", "device", "directory"])
def test_a_loose_object_that_is_not_a_regular_file_is_refused_without_blocking(
    repo: Repo, kind: str
) -> None:
    sha = history(repo, 1)[0]
    path = repo.loose(sha)
    path.unlink()
    if kind == "/dev/zero symlink":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)  # nobody ever writes it: a blocking open would hang
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    else:
        path.mkdir()
    outcome: list[BadRepo] = []

    worker = threading.Thread(
        target=lambda: outcome.append(refusal(repo.git_dir, lambda store: store.read(sha))),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the read blocked"
    assert outcome[0].message.endswith(("is a symlink", "is not a regular file"))


def zlib_bomb(header: bytes, zeros: int) -> bytes:
    """A valid zlib stream of ``header`` and ``zeros`` zeros: one flushed block repeated."""
    comp = zlib.compressobj(9)
    head = comp.compress(header + bytes(MiB)) + comp.flush(zlib.Z_FULL_FLUSH)
    middle = comp.compress(bytes(MiB)) + comp.flush(zlib.Z_FULL_FLUSH)
    last = comp.compress(bytes(MiB)) + comp.flush()
    a, b = zlib.adler32(header) & 0xFFFF, zlib.adler32(header) >> 16
    adler = (((b + zeros * a) % 65521) << 16) | a
    return head + middle * (zeros // MiB - 2) + last[:-4] + adler.to_bytes(4, "big")


def vm_hwm() -> int:
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(ln for ln in status if ln.startswith("VmHWM:")).split()[1]) * 1024


@pytest.mark.parametrize("declared", [1 << 30, 10])
def test_a_loose_zlib_bomb_is_cut_off_within_the_memory_bound(repo: Repo, declared: int) -> None:
    sha = history(repo, 1)[0]
    bomb = zlib_bomb(b"blob %d\0" % declared, 1 << 30)
    assert len(bomb) < 1.1 * MiB
    overwrite(repo.loose(sha), bomb)
    before = vm_hwm()
    tracemalloc.start()
    try:
        error = refusal(repo.git_dir, lambda store: store.read(sha))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, RepoLimit)
    assert f"inflates to more than {MiB + 32} bytes" in error.message
    assert peak < 16 * MiB
    assert vm_hwm() - before < 64 * MiB


def test_a_packed_object_over_the_size_limit_is_refused_before_it_is_inflated(
    repo: Repo,
) -> None:
    repo.commit({"big.txt": "".join(f"line {n} compresses well\n" for n in range(60_000))}, "big")
    sha = repo.rev("HEAD:big.txt")
    repo.git("gc", "-q")
    error = refusal(repo.git_dir, lambda store: store.read(sha))
    assert isinstance(error, RepoLimit)
    assert error.message.endswith(f"it is larger than {MiB} bytes")
    assert matches_git(repo, Limits(max_object=4 * MiB)) == 3


def test_the_budget_refuses_reads_once_spent(repo: Repo) -> None:
    shas = history(repo, 20)
    with ObjectStore(repo.git_dir, limits=Limits(budget=32 * 1024)) as store:
        read = [store.commit(sha) for sha in shas[:5]]
        with pytest.raises(RepoLimit, match="needs more than 32768 bytes"):
            read.extend(store.commit(sha) for sha in shas * 10)


def test_a_loose_directory_with_more_entries_than_the_cap_is_refused(repo: Repo) -> None:
    fan = repo.git_dir / "objects" / "ab"
    fan.mkdir()
    for n in range(5000):  # names git would ignore still count: listing them costs time
        (fan / f"junk{n}").touch()
    error = refusal(repo.git_dir, lambda s: s.resolve("abcd"), max_dir_entries=4096)
    assert isinstance(error, RepoLimit)
    assert error.message == "objects/ab holds more than 4096 entries"
    with ObjectStore(repo.git_dir) as store, pytest.raises(MissingObject):
        store.resolve("abcd")


def test_pack_count_and_index_size_limits_are_enforced(repo: Repo) -> None:
    history(repo, 2)
    repo.git("repack", "-q")
    repo.pack_only(repo.write_object("blob", b"another\n"))
    assert len(repo.packs()) == 2
    error = refusal(repo.git_dir, lambda s: s.resolve("0000"), max_packs=1)
    assert error.message == "objects/pack holds more than 1 packs"
    small = min(p.with_suffix(".idx").stat().st_size for p in repo.packs()) - 1
    error = refusal(repo.git_dir, lambda s: s.resolve("0000"), max_idx_file=small)
    assert error.message.endswith(f".idx is larger than {small} bytes")
    repo.packs()[0].unlink()
    assert "has no pack-" in refusal(repo.git_dir, lambda s: s.resolve("0000")).message
