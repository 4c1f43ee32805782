"""What a turn changed in the agent's workspace: snapshots of real files, and the event."""

from __future__ import annotations

import os
from pathlib import Path

from hyperhive.agent.work_changes import MAX_SHOWN, changes, mounts_below, snapshot


def test_files_added_modified_and_removed_are_reported_and_git_is_left_out(
    tmp_path: Path,
) -> None:
    (tmp_path / "keep.txt").write_text("same")
    (tmp_path / "edit.txt").write_text("before")
    (tmp_path / "gone.txt").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "index").write_text("a")
    before = snapshot(tmp_path)
    (tmp_path / "edit.txt").write_text("after, longer")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "new.py").write_text("print()")
    (tmp_path / ".git" / "index").write_text("changed")
    (tmp_path / "link").symlink_to("/etc/passwd")  # a link is not a file of the workspace
    found = changes(before, snapshot(tmp_path))
    assert found == {
        "added": ["src/new.py"],
        "modified": ["edit.txt"],
        "removed": ["gone.txt"],
        "counts": {"added": 1, "modified": 1, "removed": 1},
        "complete": True,
    }
    assert changes(snapshot(tmp_path), snapshot(tmp_path)) is None


def test_a_huge_workspace_is_walked_only_so_far_and_lists_are_capped(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    for i in range(MAX_SHOWN + 10):
        (tmp_path / f"f{i:03}").write_text("x")
    after = snapshot(tmp_path, limit=30)
    assert not after.complete and len(after.files) == 30
    found = changes(before, snapshot(tmp_path))
    assert found is not None
    assert len(found["added"]) == MAX_SHOWN and found["counts"]["added"] == MAX_SHOWN + 10
    partial = changes(before, after)
    assert partial is not None and partial["complete"] is False


def test_mount_points_inside_the_workspace_are_not_walked(tmp_path: Path) -> None:
    (tmp_path / "work" / "main" / ".venv").mkdir(parents=True)
    (tmp_path / "work" / "main" / ".venv" / "big").write_text("x")
    (tmp_path / "work" / "mine.txt").write_text("y")
    work = os.path.realpath(tmp_path / "work")
    info = tmp_path / "mountinfo"
    info.write_text(
        f"1 0 0:1 / / rw - ext4 /dev/x rw\n"
        f"2 1 0:1 /work/main/.venv {work}/main/.venv ro - ext4 /dev/x ro\n"
    )
    assert mounts_below(tmp_path / "work", info) == {f"{work}/main/.venv"}
