"""The layout is the architecture: dependencies point one way, and nothing imports in a circle.

The imports are read from the source with `ast` (every import, also those inside functions
and under TYPE_CHECKING: a lazy import is still a dependency), so a circle or a forbidden
direction fails here before it confuses a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "training", "serving", "leadscore")

#: inside features/, which subpackages each may import (the data's way through the house)
FEATURES_ALLOWED = {
    "crm": {"crm"},
    "table": {"table"},
    "pipeline": {"crm", "pipeline"},
    "points": {"crm", "table", "pipeline", "points"},
    "model": {"crm", "table", "pipeline", "points", "model"},
    "synthetic": {"crm", "synthetic"},
}
#: top-level modules of features/ that every subpackage may use; they import nothing of ours
FEATURES_LEAVES = {"allocator", "arrow", "files"}
#: which of our packages each package may import
PACKAGES_ALLOWED = {
    "features": {"features"},
    "training": {"features", "training"},
    "serving": {"features", "serving"},
    "leadscore": {"features", "training", "serving", "leadscore"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """Our modules that ``name`` imports anywhere in its source."""
    known = set(known)
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod; `from mod import x`, mod
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for imported in targets:
            target = imported
            while target and target not in known:  # `import a.b.c` of a package's attribute
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = our_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other (circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_module_imports_another_in_a_circle(graph: dict[str, set[str]]) -> None:
    circles = [group for group in strongly_connected(graph) if len(group) > 1]
    assert not circles, "import circles: " + "; ".join(" <-> ".join(g) for g in circles)


def test_packages_depend_one_way(graph: dict[str, set[str]]) -> None:
    # training and serving import features, never each other; features imports neither
    wrong = [
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if target.split(".")[0] not in PACKAGES_ALLOWED[source.split(".")[0]]
    ]
    assert not wrong, "\n".join(wrong)


def test_features_subpackages_follow_the_data(graph: dict[str, set[str]]) -> None:
    # crm <- pipeline <- points <- model; a table's cells and the generator stand apart
    wrong = []
    for source, targets in graph.items():
        parts = source.split(".")
        if parts[0] != "features" or len(parts) < 2:
            continue
        allowed = set() if parts[1] in FEATURES_LEAVES else FEATURES_ALLOWED[parts[1]]
        for target in targets:
            target_parts = target.split(".")
            if len(target_parts) < 2:
                wrong.append(f"{source} imports the features package itself")
            elif target_parts[1] not in allowed | FEATURES_LEAVES or target == source:
                wrong.append(f"{source} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_registry_writer_depends_on_nothing_in_training(graph: dict[str, set[str]]) -> None:
    assert not {t for t in graph["training.registry"] if t.startswith("training")}


def test_features_has_a_handful_of_top_level_modules() -> None:
    top = sorted(p.name for p in (ROOT / "features").glob("*.py"))
    assert len(top) <= 5, top
    for folder in sorted(p for p in (ROOT / "features").iterdir() if p.is_dir()):
        if folder.name.startswith(("_", ".")):
            continue
        init = folder / "__init__.py"
        assert init.is_file(), f"{folder} is not a package"
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), (
            f"{init} should say what lives there"
        )


def test_the_walker_sees_a_circle(tmp_path: Path) -> None:
    # the check above can fail: two modules importing each other form a group
    looped = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [g for g in strongly_connected(looped) if len(g) > 1] == [["a", "b", "c"]]
    lazy = tmp_path / "m.py"
    lazy.write_text("def f():\n    from features.model import batch\n")
    assert imports_of("x.m", lazy, {"features.model", "features.model.batch"}) == {
        "features.model.batch"
    }
