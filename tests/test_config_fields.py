"""Which agent.toml fields a proposed config changes, and what a diff touches."""

from __future__ import annotations

import pytest

from hyperhive.core.config_fields import changed_fields
from hyperhive.core.diffstat import diffstat

BASE = """role = "worker"
model = "sonnet"
allow_send = ["hm1nd"]

[sandbox]
network = true
memory_mb = 512
"""

FIELD_CASES = [
    (BASE, BASE, set()),
    (BASE, BASE.replace('"worker"', '"reviewer"'), {"role"}),
    (BASE, BASE.replace('"worker"', '"x"').replace('"sonnet"', '"opus"'), {"role", "model"}),
    (BASE, BASE.replace("network = true", "network = false"), {"sandbox.network"}),
    (BASE, BASE.replace('["hm1nd"]', '["hm1nd", "bob"]'), {"allow_send"}),  # a list is one value
    (BASE, BASE.replace("memory_mb = 512\n", ""), {"sandbox.memory_mb"}),
    (BASE, BASE + "\n[budget]\nusd_per_day = 5.0\n", {"budget.usd_per_day"}),
    (BASE, BASE.replace("memory_mb = 512", "memory_mb = 512.0"), {"sandbox.memory_mb"}),
    (BASE, "# only a comment changed\n" + BASE, set()),
    (BASE, BASE + "\n[tools]\n", {"tools"}),  # an empty table is its own name
    (None, 'role = "r"\n[sandbox]\nnetwork = false\n', {"role", "sandbox.network"}),
    ("not = [valid", 'role = "r"\n', {"role"}),  # an unreadable applied text counts as none
    ('sandbox = "x"\n', "[sandbox]\nnetwork = true\n", {"sandbox"}),  # a value became a table
]


@pytest.mark.parametrize(("applied", "proposed", "changed"), FIELD_CASES)
def test_changed_fields_are_the_dotted_names_of_what_differs(
    applied: str | None, proposed: str, changed: set[str]
) -> None:
    assert changed_fields(applied, proposed) == changed


ROLE_DIFF = """diff --git a/agent.toml b/agent.toml
index 1111111..2222222 100644
--- a/agent.toml
+++ b/agent.toml
@@ -1,2 +1,2 @@
-role = "worker"
+role = "reviewer"
 model = "sonnet"
"""
NIX_DIFF = """diff --git a/agent.nix b/agent.nix
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/agent.nix
@@ -0,0 +1,3 @@
+{ ... }: {
+-- not a removal, an added line starting with dashes
+}
"""


def test_a_diffstat_counts_lines_per_file() -> None:
    stat = diffstat(ROLE_DIFF + NIX_DIFF)
    assert stat.complete
    assert stat.to_wire() == {
        "files": [
            {"path": "agent.toml", "added": 1, "removed": 1},
            {"path": "agent.nix", "added": 3, "removed": 0},
        ],
        "added": 4,
        "removed": 1,
    }
    assert stat.paths == {"agent.toml", "agent.nix"}


def test_a_cut_diff_is_not_complete_so_it_cannot_vouch_for_its_files() -> None:
    assert not diffstat(ROLE_DIFF + "\n[diff cut at 1024 KiB]\n").complete
    assert not diffstat(ROLE_DIFF.split("@@")[0] + "[diff cut at 1024 KiB]\n").complete
    assert not diffstat("garbage\n" + ROLE_DIFF).complete


def test_an_odd_header_is_kept_whole_and_never_taken_for_agent_toml() -> None:
    stat = diffstat('diff --git "a/agent.toml " "b/agent.toml "\n')
    assert stat.paths == {'"a/agent.toml " "b/agent.toml "'}
    renamed = diffstat("diff --git a/x b/agent.toml\nsimilarity index 100%\n")
    assert renamed.paths == {"a/x b/agent.toml"}
