"""The code held against the project's layering picture, ``docs/architecture.json``.

The picture names the parts (packages and kernel modules) and draws an arrow where a part may import another;
a part may use whatever its arrows reach, directly or through other parts (the floors). Every import of
every module counts, lazy ones and those under ``TYPE_CHECKING`` included: a lazy import from a lower floor
is still an arrow back up. The tests read the source with :mod:`ast`, so they see exactly what the files say.
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bayes_ab"
BOARD = ROOT / "docs" / "architecture.json"


@lru_cache(maxsize=1)
def board() -> dict:
    return json.loads(BOARD.read_text())


def part_of(path: str) -> str | None:
    """The part holding ``path`` (relative to the project root): the longest path of any part that covers it."""
    best, length = None, -1
    for name, part in board()["parts"].items():
        for entry in part["is"]:
            if (path == entry or (entry.endswith("/") and path.startswith(entry))) and len(entry) > length:
                best, length = name, len(entry)
    return best


def module_file(module: str) -> str | None:
    """The file a dotted module name is read from, relative to the root; ``None`` outside this project."""
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate.relative_to(ROOT).as_posix()
    return None


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every bayes_ab file ``path`` imports, wherever the import stands, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("bayes_ab"):
            # ``from pkg import name`` imports pkg, and pkg.name too when that is a module
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names if alias.name.startswith("bayes_ab")]
        else:
            continue
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
        for module in modules:
            target = module_file(module)
            if target is not None:
                found.append((target, node.lineno))
    return found


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def reachable(start: str) -> set[str]:
    """The parts ``start`` may import: everything its arrows reach."""
    arrows: dict[str, set[str]] = {}
    for arrow in board()["arrows"]:
        arrows.setdefault(arrow[0], set()).add(arrow[1])
    seen, todo = set(), [start]
    while todo:
        for nxt in arrows.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_module_stands_on_exactly_one_part():
    unplaced = [p.relative_to(ROOT).as_posix() for p in source_files()
                if part_of(p.relative_to(ROOT).as_posix()) is None]
    assert unplaced == []
    for name, part in board()["parts"].items():
        for entry in part["is"]:
            assert (ROOT / entry).exists(), f"part {name} names {entry}, which does not exist"


def test_the_arrows_make_floors():
    parts = set(board()["parts"])
    for arrow in board()["arrows"]:
        assert set(arrow[:2]) <= parts, f"arrow {arrow} names an unknown part"
    cyclic = [name for name in parts if name in reachable(name)]
    assert cyclic == [], f"the arrows run in a circle through {cyclic}"


def test_every_import_runs_along_the_arrows():
    wrong = []
    for path in source_files():
        source = path.relative_to(ROOT).as_posix()
        here = part_of(source)
        allowed = reachable(here) | {here}
        for target, line in imports_of(path):
            there = part_of(target)
            if there not in allowed:
                wrong.append(f"{source}:{line} imports {target} ({here} -> {there})")
    assert wrong == []


@pytest.mark.parametrize("never", [tuple(n) for n in json.loads(BOARD.read_text())["never"]],
                         ids=lambda n: f"{n[0]}-{n[1]}")
def test_no_never_is_broken(never):
    source, target, why = never
    assert target not in reachable(source), f"the arrows let {source} reach {target}, which must never be: {why}"


def test_no_file_imports_itself_through_others():
    graph = {p.relative_to(ROOT).as_posix(): {t for t, _ in imports_of(p)} for p in source_files()}
    # Tarjan's strongly connected components: a component of more than one file is a circle
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == []


def test_the_checks_see_a_planted_arrow_back_up(tmp_path, monkeypatch):
    """The import reader is what the layering tests stand on: a lazy upward import inside a function (the kind
    that closed the old circle) must be found."""
    planted = tmp_path / "spec.py"
    planted.write_text("def read():\n    from bayes_ab.priors.store import write_prior\n    return write_prior\n")
    targets = [t for t, _ in imports_of(planted)]
    assert "bayes_ab/priors/store.py" in targets
    assert part_of("bayes_ab/priors/store.py") not in reachable("Spec") | {"Spec"}


def test_no_module_outside_the_families_names_a_family():
    """A family is its module plus one registry line: nothing else may compare a metric's family with a name,
    or hold a family's name as a literal."""
    from bayes_ab.families import registry

    names = set(registry())
    found = []
    for path in source_files():
        source = path.relative_to(ROOT).as_posix()
        if source.startswith("bayes_ab/families/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                about_family = any(isinstance(s, ast.Attribute) and s.attr == "family" for s in sides)
                literals = {c.value for s in sides for c in ast.walk(s) if isinstance(c, ast.Constant)}
                if about_family and literals & names:
                    found.append(f"{source}:{node.lineno}")
            elif isinstance(node, ast.Constant) and node.value in names - {"mean", "count"}:
                found.append(f"{source}:{node.lineno}: {node.value!r}")
    assert found == []


def test_the_compiled_model_cache_ignores_exactly_the_parts_above_the_families():
    """A model's code is built by its family from the floors below it; the cache key hashes those sources and no
    others (editing the report never recompiles a model), and nothing below may be left out (a stale model)."""
    from bayes_ab.models.compiled import ABOVE_THE_MODELS

    below = reachable("Families") | {"Families"}
    for path in source_files():
        relative = path.relative_to(PACKAGE)
        ignored = relative.parts[0] in ABOVE_THE_MODELS
        assert ignored == (part_of(path.relative_to(ROOT).as_posix()) not in below), relative.as_posix()


def test_the_cache_key_follows_the_families_and_not_the_report(tmp_path):
    import shutil

    from bayes_ab.models.compiled import source_digest

    copy = tmp_path / "bayes_ab"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_digest(copy)
    (copy / "report" / "sections.py").write_text((copy / "report" / "sections.py").read_text() + "\n# edited\n")
    assert source_digest(copy) == before
    (copy / "families" / "count.py").write_text((copy / "families" / "count.py").read_text() + "\n# edited\n")
    assert source_digest(copy) != before
