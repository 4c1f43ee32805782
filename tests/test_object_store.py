"""The verifying object reader, against real repositories made by the real git CLI.

Each attack is built the way a hostile manager would build it, by writing files
into its own ``.git``; the reader must refuse it with BadRepo, within its
memory bound, without blocking, and without echoing anything it read.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperhive.core.git_delta import apply_delta
from hyperhive.core.git_format import object_sha, parse_loose
from hyperhive.core.git_pack import parse_idx
from hyperhive.core.object_store import (
    AmbiguousObject,
    BadRepo,
    CorruptObject,
    Limits,
    MissingObject,
    ObjectStore,
    RepoLimit,
    WrongKind,
    parse_commit,
    parse_tree,
    walk,
)
from support.git_repo import (
    EMPTY_BLOB,
    EMPTY_TREE,
    FUZZ,
    Repo,
    history,
    matches_git,
    new_repo,
    overwrite,
    refusal,
)


@pytest.fixture
def repo(short_dir: Path) -> Repo:
    return new_repo(short_dir / "repo")


# -- reading what git wrote -------------------------------------------------------


@pytest.mark.parametrize(
    ("packing", "delta_type"),
    [([], None), (["gc", "-q"], 6), (["-c", "pack.indexVersion=1", "repack", "-adf", "-q"], 6),
     (["-c", "repack.useDeltaBaseOffset=false", "repack", "-adf", "-q"], 7)],
    ids=["loose", "gc, OFS_DELTA", "index v1", "REF_DELTA"],
)  # fmt: skip
def test_every_object_reads_exactly_as_git_cat_file_shows_it(
    repo: Repo, packing: list[str], delta_type: int | None
) -> None:
    history(repo, 12)
    if packing:
        repo.git(*packing)
        data = repo.packs()[0].read_bytes()
        types = {(data[int(row[4])] >> 4) & 7 for row in repo.packed() if len(row) == 7}
        assert types == {delta_type}  # real deltas, of the kind this case is about
        assert not list((repo.git_dir / "objects").glob("??/*"))
        index_v2 = repo.packs()[0].with_suffix(".idx").read_bytes()[:4] == b"\377tOc"
        assert index_v2 == ("pack.indexVersion=1" not in packing)
    assert matches_git(repo) == 12 * 5


def write_idx(pack: bytes, entries: list[tuple[str, int]]) -> bytes:
    """A version 2 index for ``pack`` listing ``entries`` (sha, offset), as git lays it out."""
    ends = [*sorted(offset for _, offset in entries), len(pack) - 20]
    crc = {o: zlib.crc32(pack[o : ends[ends.index(o) + 1]]) for _, o in entries}
    rows = sorted((bytes.fromhex(sha), offset) for sha, offset in entries)
    fanout = [sum(1 for name, _ in rows if name[0] <= b) for b in range(256)]
    data = b"\377tOc" + struct.pack(">I256I", 2, *fanout) + b"".join(n for n, _ in rows)
    data += b"".join(struct.pack(">I", crc[o]) for _, o in rows)
    data += b"".join(struct.pack(">I", o) for _, o in rows) + pack[-20:]
    return data + hashlib.sha1(data).digest()


@pytest.mark.parametrize("base_in", ["loose objects", "another pack"])
def test_a_thin_packs_ref_delta_finds_its_base_anywhere_in_the_store(
    short_dir: Path, base_in: str
) -> None:
    src, dst = new_repo(short_dir / "src"), new_repo(short_dir / "dst")
    old, new = history(src, 8)[-2:]
    base = src.git("pack-objects", "--revs", "--stdout", "-q", stdin=f"{old}\n".encode())
    dst.git(*(["index-pack", "--stdin"] if base_in == "another pack" else ["unpack-objects"]),
            stdin=base)  # fmt: skip
    thin = src.git("pack-objects", "--revs", "--thin", "--stdout", "-q",
                   stdin=f"{new}\n^{old}\n".encode())  # fmt: skip
    fixed = short_dir / "fixed.pack"  # git indexes a thin pack only with its bases appended
    src.git("index-pack", "--stdin", "--fix-thin", str(fixed), stdin=thin)
    own = [(r[0], int(r[4])) for r in src.packed(fixed.with_suffix(".idx"))]
    own = [(sha, offset) for sha, offset in own if offset < len(thin) - 20]
    assert 7 in {(thin[offset] >> 4) & 7 for _, offset in own}  # REF_DELTAs to outside
    name = dst.git_dir / "objects" / "pack" / f"pack-{thin[-20:].hex()}"
    name.with_suffix(".pack").write_bytes(thin)
    name.with_suffix(".idx").write_bytes(write_idx(thin, own))
    expected = src.objects()
    with ObjectStore(dst.git_dir) as store:
        assert all(store.read(sha).data == expected[sha][1] for sha, _ in own)


def test_a_delta_chain_longer_than_the_limit_is_refused_and_one_at_it_is_read(
    repo: Repo,
) -> None:
    history(repo, 16)
    # One thread: a threaded repack splits the window and may build shorter chains.
    repo.git("-c", "pack.threads=1", "repack", "-adf", "--depth=100", "--window=2", "-q")
    deepest = max((row for row in repo.packed() if len(row) == 7), key=lambda r: int(r[5]))
    depth = int(deepest[5])
    assert depth >= 4
    with ObjectStore(repo.git_dir, limits=Limits(max_delta_depth=depth)) as store:
        assert store.read(deepest[0]).kind == "blob"
    error = refusal(repo.git_dir, lambda s: s.read(deepest[0]), max_delta_depth=depth - 1)
    assert isinstance(error, RepoLimit)
    assert f"delta chain longer than {depth - 1}" in error.message


# -- resolving names --------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True])
def test_a_unique_prefix_resolves_and_others_are_missing_or_refused(
    repo: Repo, packed: bool
) -> None:
    head = history(repo, 2)[-1]
    if packed:
        repo.git("gc", "-q")
    absent = "0000" if not head.startswith("0000") else "ffff"
    with ObjectStore(repo.git_dir) as store:
        assert all(store.resolve(head[:digits]) == head for digits in (4, 7, 12, 39, 40))
        assert store.commit(store.resolve(head[:8])).parents == (repo.rev("HEAD~1"),)
        with pytest.raises(MissingObject):
            store.resolve(absent)
        with pytest.raises(MissingObject):
            store.read(absent * 10)
        for bad in ("abc", head.upper(), head + "0", "../x", "g" * 8):
            with pytest.raises(BadRepo, match="4 to 40 lowercase hex digits"):
                store.resolve(bad)


def colliding_blobs() -> tuple[bytes, bytes]:
    """Two blob contents whose names share their first four hex digits."""
    seen: dict[str, bytes] = {}
    for n in range(1_000_000):
        data = f"blob number {n}\n".encode()
        if (prefix := object_sha("blob", data)[:4]) in seen:
            return seen[prefix], data
        seen[prefix] = data
    raise AssertionError("no collision")


@pytest.mark.parametrize("one_packed", [False, True])
def test_a_prefix_two_objects_share_is_ambiguous(repo: Repo, one_packed: bool) -> None:
    first, second = colliding_blobs()
    sha = repo.write_object("blob", first)
    if one_packed:
        repo.pack_only(sha)
        assert not repo.loose(sha).exists()
    other = repo.write_object("blob", second)
    with ObjectStore(repo.git_dir) as store:
        with pytest.raises(AmbiguousObject, match="give more digits"):
            store.resolve(sha[:4])
        assert (store.resolve(sha[:12]), store.resolve(other[:12])) == (sha, other)


# -- trees and commits ------------------------------------------------------------


def test_walk_lists_every_entry_as_git_ls_tree_does(repo: Repo) -> None:
    (repo.work / "bin").mkdir()
    (repo.work / "bin" / "run").write_text("#!/bin/sh\n")
    (repo.work / "bin" / "run").chmod(0o755)
    (repo.work / "link").symlink_to("agent.toml")
    repo.commit({"agent.toml": "x = 1\n", "a/b/c.txt": "c", "a.b": "d", "a-b/x": "e"}, "tree")
    expected = []
    for row in filter(None, repo.git("ls-tree", "-r", "-t", "-z", "HEAD").split(b"\0")):
        meta, path = row.split(b"\t")
        mode, _, sha = meta.decode().split()
        expected.append((path.decode(), mode.lstrip("0"), sha))
    with ObjectStore(repo.git_dir) as store:
        tree = store.commit(repo.rev()).tree
        assert [tuple(e) for e in walk(store, tree, max_entries=100, max_depth=5)] == expected
        with pytest.raises(RepoLimit, match="more than 5 entries"):
            walk(store, tree, max_entries=5, max_depth=5)
        with pytest.raises(RepoLimit, match="nests deeper than 2 levels"):
            walk(store, tree, max_entries=100, max_depth=2)
        with pytest.raises(WrongKind, match="is a commit, not a tree"):
            walk(store, repo.rev(), max_entries=100, max_depth=5)


def test_a_merge_commit_parses_to_its_tree_and_both_parents(repo: Repo) -> None:
    repo.commit({"agent.toml": "a\n"}, "base")
    repo.git("checkout", "-q", "-b", "side")
    left = repo.commit({"side.txt": "s\n"}, "side")
    repo.git("checkout", "-q", "-")
    right = repo.commit({"main.txt": "m\n"}, "main")
    repo.git("merge", "-q", "--no-edit", "side")
    with ObjectStore(repo.git_dir) as store:
        commit = store.commit(repo.rev())
    assert (commit.tree, commit.parents) == (repo.rev("HEAD^{tree}"), (right, left))


TREE_LINE = f"tree {EMPTY_TREE}\n".encode()
WHO = b"author t <t@x> 0 +0000\ncommitter t <t@x> 0 +0000\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        WHO + TREE_LINE + b"\nmsg\n",
        TREE_LINE.upper() + WHO + b"\nmsg\n",
        TREE_LINE + TREE_LINE + WHO + b"\n",
        TREE_LINE + WHO + b"parent " + EMPTY_TREE.encode() + b"\n\n",
        TREE_LINE + WHO + TREE_LINE + b"\n",
        TREE_LINE + b"parent abc\n" + WHO + b"\n",
        TREE_LINE + WHO[:-1],
        TREE_LINE + b"committer t <t@x> 0 +0000\n\n",
        TREE_LINE + WHO.replace(b"committer", b"c\0mmitter") + b"\n",
    ],
)
def test_a_commit_not_in_gits_canonical_layout_is_refused(raw: bytes) -> None:
    with pytest.raises(CorruptObject):
        parse_commit(raw)


def tree_bytes(*rows: tuple[bytes, bytes]) -> bytes:
    return b"".join(
        mode + b" " + name + b"\0" + bytes.fromhex(EMPTY_BLOB if mode == b"100644" else EMPTY_TREE)
        for mode, name in rows
    )


@pytest.mark.parametrize(
    ("rows", "why"),
    [
        ([(b"100644", b"b"), (b"100644", b"a")], "not in git's order"),
        ([(b"100644", b"a"), (b"100644", b"a")], "one entry twice"),
        ([(b"100644", b"a"), (b"100644", b"a-b"), (b"40000", b"a")], "one entry twice"),
        ([(b"40000", b"a"), (b"100644", b"a.b")], "not in git's order"),
        ([(b"100664", b"a")], "mode git does not write"),
        ([(b"040000", b"a")], "mode git does not write"),
        ([(b"100644", b"..")], "empty or unsafe name"),
        ([(b"100644", b"")], "empty or unsafe name"),
    ],
)
def test_a_tree_git_would_not_write_is_refused_though_its_hash_is_right(
    repo: Repo, rows: list[tuple[bytes, bytes]], why: str
) -> None:
    sha = repo.write_object("tree", tree_bytes(*rows))
    error = refusal(repo.git_dir, lambda store: store.tree(sha))
    assert isinstance(error, CorruptObject)
    assert error.message.startswith(f"tree {sha} is corrupt: ")
    assert why in error.message


def test_a_tree_in_gits_order_parses_and_its_names_decode_strictly(repo: Repo) -> None:
    rows = [(b"100644", b"foo-bar"), (b"100644", b"foo.txt"), (b"40000", b"foo"),
            (b"100644", b"foo0"), (b"160000", b"sub"), (b"120000", b"\xff")]  # fmt: skip
    entries = parse_tree(tree_bytes(*rows))
    assert [(e.mode.encode(), e.name) for e in entries] == rows
    with pytest.raises(CorruptObject, match="not UTF-8"):
        _ = entries[-1].name_str
    assert repo.write_object("tree", b"") == EMPTY_TREE
    sha = repo.write_object("tree", tree_bytes(*rows))
    with ObjectStore(repo.git_dir) as store, pytest.raises(CorruptObject, match=f"tree {sha}"):
        walk(store, sha, max_entries=10, max_depth=2)


# -- random input only ever meets BadRepo -------------------------------------------


@FUZZ
@given(st.binary(max_size=400), st.binary(max_size=300))
def test_random_bytes_given_to_any_parser_or_the_delta_applier_only_ever_raise_bad_repo(
    data: bytes, base: bytes
) -> None:
    def delta(raw: bytes) -> object:
        return apply_delta(base, raw, max_result=1024)

    parsers: list[Callable[[bytes], object]] = [parse_tree, parse_commit, parse_loose, parse_idx]
    for parse in [*parsers, delta]:
        with contextlib.suppress(BadRepo):
            parse(data)


def varint(value: int) -> bytes:
    out = bytearray([value & 0x7F])
    while value := value >> 7:
        out[-1] |= 0x80
        out.append(value & 0x7F)
    return bytes(out)


@FUZZ
@given(
    st.binary(min_size=1, max_size=300),
    st.lists(
        st.binary(min_size=1, max_size=127) | st.tuples(st.integers(0, 299), st.integers(1, 300))
    ),
)
def test_a_delta_of_copies_and_inserts_rebuilds_exactly_what_it_says(
    base: bytes, ops: list[bytes | tuple[int, int]]
) -> None:
    body, expected = bytearray(), bytearray()
    for op in ops:
        if isinstance(op, bytes):
            body += bytes([len(op)]) + op
            expected += op
            continue
        offset = op[0] % len(base)
        size = min(op[1], len(base) - offset)
        body += bytes([0x80 | 0x01 | 0x02 | 0x10 | 0x20]) + struct.pack("<HH", offset, size)
        expected += base[offset : offset + size]
    delta = varint(len(base)) + varint(len(expected)) + bytes(body)
    assert apply_delta(base, delta, max_result=1 << 16) == bytes(expected)
    with pytest.raises(CorruptObject):
        apply_delta(base + b"x", delta, max_result=1 << 16)


@pytest.fixture(scope="module")
def packed_repo(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Repo, dict[str, tuple[str, bytes]]]:
    repo = new_repo(tmp_path_factory.mktemp("packed") / "repo")
    history(repo, 6)
    repo.git("repack", "-adf", "-q")
    return repo, repo.objects()


@FUZZ
@given(st.data())
def test_a_pack_or_index_with_any_byte_changed_reads_right_or_raises_bad_repo(
    packed_repo: tuple[Repo, dict[str, tuple[str, bytes]]], data: st.DataObject
) -> None:
    repo, expected = packed_repo
    path = repo.packs()[0].with_suffix(data.draw(st.sampled_from([".pack", ".idx"])))
    original = path.read_bytes()
    at = data.draw(st.integers(0, len(original) - 21))
    changed = bytearray(original)
    changed[at] ^= data.draw(st.integers(1, 255))
    if path.suffix == ".idx":  # past the checksum, to reach the checks behind it
        changed[-20:] = hashlib.sha1(bytes(changed[:-20])).digest()
    overwrite(path, bytes(changed))
    try:
        with ObjectStore(repo.git_dir) as store:
            for sha, (kind, content) in expected.items():
                with contextlib.suppress(BadRepo):
                    obj = store.read(sha)
                    assert (obj.kind, obj.data) == (kind, content)
    except BadRepo:
        pass
    finally:
        overwrite(path, original)
