"""The package's floors hold: no import cycle, no import of the CLI from the library, no arrow that runs back up.

Every ``import`` and ``from ... import`` of every module is read with ``ast`` (imports inside functions
count: a lazy import is still a dependency). docs/architecture.md draws the same floors.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "deploykit"

# Bottom to top. A folder may import its own modules and any folder on a lower floor, nothing else.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("formats",),
    ("loaders", "runners"),
    ("image_io", "passes", "inspection"),
    ("labels", "detection"),
    ("parity",),
    ("quantize",),
    ("converters",),
    ("targets",),
    ("report",),
    ("bundle",),
    ("pipeline",),
    ("orchestration",),
    ("cli",),
)
ALLOWED = {folder: {below for lower in FLOORS[:level] for below in lower}
           for level, floor in enumerate(FLOORS) for folder in floor}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """The deploykit modules ``module`` imports (a name imported from a package counts as the package)."""
    path, is_package = MODULES[module]
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "deploykit":
                target = _resolve(name)
                if target and target != module:
                    found.add(target)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _folder(module: str) -> str | None:
    """The top-level folder of a module (None for the public API, ``deploykit/__init__.py``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
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
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_every_folder_of_the_package_is_on_a_floor():
    folders = {_folder(m) for m in MODULES} - {None}
    assert folders <= set(ALLOWED), f"put these folders on a floor in FLOORS: {sorted(folders - set(ALLOWED))}"
    assert not [m for m in MODULES if m.count(".") == 1 and not MODULES[m][1]], \
        "the package root holds only __init__.py (the public API) and folders"


def test_no_import_cycle():
    assert _cycles() == []


def test_the_library_never_imports_the_cli():
    offenders = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
                       if _folder(t) == "cli" and _folder(m) != "cli")
    assert offenders == []


def test_no_import_runs_back_up():
    upward = defaultdict(list)
    for module, targets in GRAPH.items():
        here = _folder(module)
        if here is None:
            continue  # the public API sits on top of everything
        for target in targets:
            there = _folder(target)
            if there is None:
                upward[here].append(f"{module} -> {target} (the public API)")
            elif there != here and there not in ALLOWED[here]:
                upward[here].append(f"{module} -> {target}")
    assert dict(upward) == {}


@pytest.mark.parametrize("seeded", ["cycle", "upward"])
def test_the_checks_find_what_they_look_for(seeded, monkeypatch):
    """The walker is not vacuous: a cycle and an upward import put into the graph are found."""
    graph = {module: set(targets) for module, targets in GRAPH.items()}
    if seeded == "cycle":
        graph["deploykit.core.errors"].add("deploykit.core.types")
        graph["deploykit.core.types"].add("deploykit.core.errors")
        monkeypatch.setitem(globals(), "GRAPH", graph)
        assert ["deploykit.core.errors", "deploykit.core.types"] in _cycles()
    else:
        graph["deploykit.core.errors"].add("deploykit.pipeline.convert")
        monkeypatch.setitem(globals(), "GRAPH", graph)
        with pytest.raises(AssertionError):
            test_no_import_runs_back_up()
