"""The house's measures, read from the source with ``ast``: no import cycles among
hyperhive's modules, core/backends/agent never reaching up into web/cli, and
modules and functions of a size one can read.

Imports count wherever they are written: at the top, under ``if TYPE_CHECKING:``,
or inside a function. Each checker takes a package root, so the synthetic tests
at the bottom show it catching what it claims on a small tree of their own.
"""

from __future__ import annotations

import ast
import statistics
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Final

SRC: Final = Path(__file__).resolve().parents[1] / "src"
PACKAGE: Final = "hyperhive"
LOW: Final = ("core", "backends", "agent")  # layers that never import …
HIGH: Final = ("web", "cli")  # … these
MAX_FUNCTION: Final = 80
MAX_MODULE: Final = 400
MEDIAN_BELOW: Final = 150

Graph = dict[str, set[str]]


# -- reading the tree ----------------------------------------------------------


def find_modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name (a package is its __init__)."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` if it is a module of ours, else its longest prefix that is, else None."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _from_base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from … import`` reads from, relative levels resolved."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def module_imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that ``module`` imports, anywhere in its source."""
    targets: set[str | None] = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            targets.update(_known(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(module, path, node)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                targets.add(child if child in modules else _known(base, modules))
    return {t for t in targets if t is not None and t != module}


def import_graph(root: Path, package: str) -> Graph:
    modules = find_modules(root, package)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


# -- cycles ----------------------------------------------------------------------


def _components(graph: Graph) -> list[set[str]]:
    """Strongly connected components (Tarjan), iteratively: no recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    work: list[tuple[str, Iterator[str]]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        work.append((node, iter(sorted(graph.get(node, ())))))

    for start in sorted(graph):
        if start in index:
            continue
        visit(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    found.append(component)
            elif nxt not in index:
                visit(nxt)
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
    return found


def _shortest_cycle(graph: Graph, start: str, within: set[str]) -> list[str]:
    """The shortest path ``start`` → … back to ``start``, inside one component."""
    before: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph.get(node, ())):
            if nxt not in within:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(before[path[-1]])
                return path[::-1]
            if nxt not in before:
                before[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is in a component but on no cycle")


def find_cycles(graph: Graph) -> list[list[str]]:
    """For every module on a cycle, the shortest cycle through it (each cycle once)."""
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for component in _components(graph):
        if len(component) < 2:
            continue
        for start in sorted(component):
            cycle = _shortest_cycle(graph, start, component)
            first = cycle.index(min(cycle))
            canonical = tuple(cycle[first:] + cycle[:first])
            if canonical not in seen:
                seen.add(canonical)
                cycles.append(list(canonical))
    return sorted(cycles)


def show_cycle(cycle: list[str]) -> str:
    return " → ".join([*cycle, cycle[0]])


# -- layers ------------------------------------------------------------------------


def _in(module: str, package: str, layers: tuple[str, ...]) -> bool:
    return any(
        module == f"{package}.{layer}" or module.startswith(f"{package}.{layer}.")
        for layer in layers
    )


def layer_violations(
    graph: Graph, package: str, low: tuple[str, ...] = LOW, high: tuple[str, ...] = HIGH
) -> list[tuple[str, str]]:
    """Every import from a module of a ``low`` layer into a ``high`` one."""
    return sorted(
        (source, target)
        for source, targets in graph.items()
        if _in(source, package, low)
        for target in targets
        if _in(target, package, high)
    )


# -- sizes -------------------------------------------------------------------------


def _functions(tree: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
    """``(qualified name, length)`` of every function under ``tree``, nested ones too.

    A function runs from its ``def`` line (decorators excluded) to its last line, so a
    nested function counts on its own and inside its parent alike.
    """
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            assert node.end_lineno is not None
            yield f"{name} (line {node.lineno})", node.end_lineno - node.lineno + 1
            yield from _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def long_functions(root: Path, package: str, limit: int = MAX_FUNCTION) -> list[tuple[str, int]]:
    return [
        (f"{module}:{name}", length)
        for module, path in find_modules(root, package).items()
        for name, length in _functions(_parse(path), "")
        if length > limit
    ]


def module_lengths(root: Path, package: str) -> dict[str, int]:
    return {
        module: len(path.read_text(encoding="utf-8").splitlines())
        for module, path in find_modules(root, package).items()
    }


def long_modules(root: Path, package: str, limit: int = MAX_MODULE) -> list[tuple[str, int]]:
    return sorted((m, n) for m, n in module_lengths(root, package).items() if n > limit)


def median_length(root: Path, package: str) -> float:
    """The median length of the modules that hold code (package ``__init__`` markers aside)."""
    modules = find_modules(root, package)
    lengths = module_lengths(root, package)
    return statistics.median(n for m, n in lengths.items() if modules[m].name != "__init__.py")


def _listed(found: list[tuple[str, int]]) -> str:
    return "\n".join(f"  {name}: {length} lines" for name, length in found)


# -- the real tree -------------------------------------------------------------------


def test_no_hyperhive_module_imports_itself_back_through_others() -> None:
    cycles = find_cycles(import_graph(SRC, PACKAGE))
    assert not cycles, "import cycles:\n" + "\n".join(f"  {show_cycle(c)}" for c in cycles)


def test_core_backends_and_agent_never_import_web_or_cli() -> None:
    found = layer_violations(import_graph(SRC, PACKAGE), PACKAGE)
    assert not found, "imports into web/cli:\n" + "\n".join(f"  {a} → {b}" for a, b in found)


def test_no_function_is_longer_than_80_lines() -> None:
    found = long_functions(SRC, PACKAGE)
    assert not found, f"functions over {MAX_FUNCTION} lines:\n{_listed(found)}"


def test_no_module_is_longer_than_400_lines() -> None:
    found = long_modules(SRC, PACKAGE)
    assert not found, f"modules over {MAX_MODULE} lines:\n{_listed(found)}"


def test_the_median_module_is_shorter_than_150_lines() -> None:
    median = median_length(SRC, PACKAGE)
    assert median < MEDIAN_BELOW, f"the median module is {median} lines"


# -- the checkers, on a synthetic tree ---------------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for directory in {p.parent for p in root.rglob("*.py")}:
        (directory / "__init__.py").touch()
    return root


def function(name: str, lines: int, indent: str = "") -> str:
    """A function of exactly ``lines`` lines, its ``def`` line included."""
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(lines - 1))
    return f"{indent}def {name}() -> None:\n{body}"


def test_a_cycle_is_reported_as_a_path_back_to_its_start(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "import pkg.c\n",
            "pkg/c.py": "from . import a\n",
            "pkg/d.py": "from pkg.a import something\n",  # into the cycle, not on it
        },
    )
    cycles = find_cycles(import_graph(root, "pkg"))
    assert cycles == [["pkg.a", "pkg.b", "pkg.c"]]
    assert show_cycle(cycles[0]) == "pkg.a → pkg.b → pkg.c → pkg.a"


def test_a_cycle_through_type_checking_or_a_function_body_is_a_cycle(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "pkg/t1.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.t2 import Thing\n"
            ),
            "pkg/t2.py": "from pkg.t1 import Other\n",
            "pkg/sub/l1.py": "def later() -> None:\n    from ..sub import l2\n",
            "pkg/sub/l2.py": "from .l1 import later\n",
        },
    )
    cycles = find_cycles(import_graph(root, "pkg"))
    assert cycles == [["pkg.sub.l1", "pkg.sub.l2"], ["pkg.t1", "pkg.t2"]]


def test_from_a_package_import_a_name_is_an_edge_to_the_package(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "pkg/core/__init__.py": "HELPER = 1\n",
            "pkg/core/mod.py": "",
            "pkg/user.py": "from pkg.core import HELPER, mod\nimport os.path\n",
        },
    )
    assert import_graph(root, "pkg")["pkg.user"] == {"pkg.core", "pkg.core.mod"}


def test_a_lower_layer_importing_web_or_cli_is_reported(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "pkg/core/x.py": "def late() -> None:\n    from pkg.web import app\n",
            "pkg/agent/y.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..cli import main\n"
            ),
            "pkg/backends/z.py": "import pkg.core.x\n",  # a lower layer among its own: fine
            "pkg/web/app.py": "from pkg.core import x\n",  # looking down: fine
            "pkg/cli/main.py": "",
        },
    )
    assert layer_violations(import_graph(root, "pkg"), "pkg") == [
        ("pkg.agent.y", "pkg.cli.main"),
        ("pkg.core.x", "pkg.web.app"),
    ]


def test_functions_over_80_lines_are_reported_by_name_and_length(tmp_path: Path) -> None:
    nested = "def outer() -> None:\n" + function("inner", 81, "    ")
    decorated = "@staticmethod\n@property\n" + function("decorated", 80)
    method = "class Box:\n" + function("method", 81, "    ")
    root = write_tree(
        tmp_path,
        {
            "pkg/sizes.py": "\n".join(
                [function("fits", 80), function("long", 81), nested, decorated, method]
            )
        },
    )
    assert {name.split(" ")[0]: n for name, n in long_functions(root, "pkg")} == {
        "pkg.sizes:long": 81,
        "pkg.sizes:outer": 82,
        "pkg.sizes:outer.inner": 81,
        "pkg.sizes:Box.method": 81,
    }


def test_modules_over_400_lines_and_a_long_median_are_reported(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "pkg/big.py": "x = 1\n" * 401,
            "pkg/fits.py": "x = 1\n" * 400,
            "pkg/mid.py": "x = 1\n" * 150,
        },
    )
    assert long_modules(root, "pkg") == [("pkg.big", 401)]
    assert median_length(root, "pkg") == 400  # the empty __init__ does not count
