"""The package's module graph, read from the source with ``ast`` (every ``import`` statement,
also those inside functions): no import circle between the package's parts, no import up the
study layer's floors, and no module over 400 lines outside ``paploss/kernels/``.

A part is a subpackage (``paploss.kernels``, ``paploss.study.runner``, ...) or a module directly
in ``paploss/`` or ``paploss/study/``; imports inside one part are free. The floors of the study
layer and of the reproduction on top of it (``paploss.reproduce``), from the ground up, are listed
in ``FLOORS``: a part may import its own floor's parts and the floors below, never one above;
everything else in the package lies below them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import paploss

PACKAGE = Path(paploss.__file__).resolve().parent
SKIP = ("configs",)
"""Folders of ``paploss/`` that hold no importable modules (mmengine config files)."""
MAX_LINES = 400
LONG_MODULES: dict[str, str] = {}
"""Modules over MAX_LINES that wait for their split (path: why); each must still be over it."""

STUDY = "paploss.study"
FLOORS: tuple[tuple[str, ...], ...] = (
    ("paploss.study", "paploss.study.cli", "paploss.study.keys", "paploss.study.storage",
     "paploss.study.options", "paploss.study.parsers"),
    ("paploss.study.data",),
    ("paploss.study.config",),
    ("paploss.study.runner",),
    ("paploss.study.search", "paploss.study.train", "paploss.study.train_params",
     "paploss.study.split"),
    ("paploss.reproduce",),
)  # fmt: skip
"""The floors of the study layer and of the reproduction above it, from the ground up."""


def _module_files() -> Iterator[tuple[str, Path]]:
    """(dotted name, file) of every module of the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        if rel.parts[1] in SKIP:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


MODULES = dict(_module_files())


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve(name: str) -> str:
    """The module an imported name lives in: ``name`` itself or its longest module prefix."""
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports_of(name: str, path: Path) -> set[str]:
    """The package's modules that the module ``name`` imports (anywhere in its body)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(name, path).split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
        else:
            continue
        found |= {_resolve(t) for t in targets if t == "paploss" or t.startswith("paploss.")}
    found.discard(name)
    return found


def part_of(module: str) -> str:
    """The part a module belongs to: its subpackage of ``paploss`` or ``paploss.study``, or the
    module itself when it lies directly in one of those two folders (``paploss.reproduce`` is
    one part)."""
    parts = module.split(".")
    if module == STUDY or module.startswith(STUDY + "."):
        depth = 3
    else:
        depth = 2
    part = ".".join(parts[:depth])
    is_package = (PACKAGE.parent / Path(*part.split(".")) / "__init__.py").is_file()
    return part if is_package or len(parts) <= depth else module


def floor_of(part: str) -> int:
    """The floor of a part (-1: below the study layer)."""
    for level, names in enumerate(FLOORS):
        if part in names:
            return level
    if part.startswith((STUDY + ".", "paploss.reproduce.")):
        raise AssertionError(f"{part} has no floor: add it to FLOORS in tests/test_layout.py")
    return -1


def part_graph() -> dict[str, set[str]]:
    """Part -> the other parts it imports."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(part_of(name), set())
        edges |= {part_of(m) for m in imports_of(name, path)}
    for part, edges in graph.items():
        edges.discard(part)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_source() -> None:
    graph = part_graph()
    # known edges of each kind: a top-level import, one inside a function, a relative import
    assert "paploss.study.data" in graph["paploss.study.config"]
    assert "paploss.study.runner" in graph["paploss.study.search"]
    assert "paploss.proxy" in graph["paploss.study.data"]  # resolve_data's lazy import
    assert "paploss.kernels" in graph["paploss.loss"]
    assert part_of("paploss.study.runner.warm") == "paploss.study.runner"
    assert part_of("paploss.study.cli") == "paploss.study.cli"
    assert part_of("paploss.samplers._ppo2._rounds") == "paploss.samplers"
    assert part_of("paploss.loss") == "paploss.loss"


def test_circles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_parts() -> None:
    assert circles(part_graph()) == []


def test_no_import_runs_up_the_floors() -> None:
    upward = []
    for name, path in MODULES.items():
        here = floor_of(part_of(name))
        for target in sorted(imports_of(name, path)):
            there = floor_of(part_of(target))
            if there > here:
                upward.append(f"{name} (floor {here}) imports {target} (floor {there})")
    assert upward == []


def test_every_study_part_has_a_floor() -> None:
    for name in MODULES:
        floor_of(part_of(name))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name: str) -> None:
    path = MODULES[name]
    rel = path.relative_to(PACKAGE.parent).as_posix()
    if rel.startswith("paploss/kernels/"):
        return  # a kernel stays beside its autograd function
    lines = len(path.read_text().splitlines())
    if rel in LONG_MODULES:
        assert lines > MAX_LINES, f"{rel} has {lines} lines: remove it from LONG_MODULES"
    else:
        assert lines <= MAX_LINES, f"{rel} has {lines} lines (at most {MAX_LINES})"
