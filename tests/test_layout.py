"""The package's shape: no import cycles, no private names across modules, arrows pointing down the line.

The import graph is read from the source with `ast` (every import, also those
inside functions and under `if TYPE_CHECKING:`), so a cycle that only a lazy
import hides still counts: a reader following the imports meets it all the same.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "forgetscope"

#: package (first part below forgetscope) -> the packages it may import; the straight line
#: tasks -> backends -> engine -> records -> analysis -> report / gate, with the training
#: runner and the importers beside it and the CLI on top. Top-level modules (env, textfile, configio)
#: are global utilities anyone may import.
ALLOWED = {
    "records": set(),
    "tasks": set(),
    "backends": {"tasks"},
    "analysis": {"records"},
    "engine": {"records", "tasks", "backends", "analysis"},
    "report": {"records", "analysis"},
    "gate": {"records", "analysis", "report"},
    "importers": {"records", "tasks"},
    "train": {"records", "tasks", "backends", "analysis", "engine", "report"},
    "cli": {"records", "tasks", "backends", "analysis", "engine", "report", "gate", "importers", "train"},
}
GLOBAL_MODULES = {"__init__", "configio", "env", "textfile"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, level: int, name: str | None, path: Path) -> str:
    """The absolute module an import statement names (relative imports resolved against `path`)."""
    if level == 0:
        return name or ""
    base = module_name(path).split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


@functools.lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    """The file's syntax tree, parsed once for all the tests here (they only read it)."""
    return ast.parse(path.read_text(encoding="utf-8"))


def imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in the file."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = resolve(module_name(path), node.level, node.module, path)
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                if submodule in MODULES:  # `from . import heatmaps`: the module itself
                    found.append((submodule, None, node.lineno))
                else:
                    found.append((module, alias.name, node.lineno))
    return found


@functools.lru_cache(maxsize=None)
def graph() -> Mapping[str, frozenset[str]]:
    """module -> the package modules it imports; built once and read-only, since every test shares it."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, _, _ in imports(path):
            if target.startswith("forgetscope") and target != module:
                while target not in MODULES:  # forgetscope.a.b.name -> forgetscope.a.b
                    target = target.rpartition(".")[0]
                if target != module:
                    edges[module].add(target)
    return MappingProxyType({module: frozenset(targets) for module, targets in edges.items()})


def find_cycles(edges: Mapping[str, frozenset[str] | set[str]]) -> list[list[str]]:
    """One cycle per strongly connected part found by a depth-first search (empty: none)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_sees_lazy_imports():
    """The reader must see imports inside functions, else a lazy import would hide a cycle."""
    edges = graph()
    assert "forgetscope.records.store" in edges["forgetscope.engine.evaluate"]
    # records.fsstore is imported only inside engine.evaluate.plan_task: this edge exists only if
    # function bodies are read (the first check above is a top-level import, true either way).
    evaluate = MODULES["forgetscope.engine.evaluate"]
    top_level = {resolve(module_name(evaluate), node.level, node.module, evaluate)
                 for node in _tree(evaluate).body if isinstance(node, ast.ImportFrom)}
    assert "forgetscope.records.fsstore" not in top_level, "pick another edge made only by a function-level import"
    assert "forgetscope.records.fsstore" in edges["forgetscope.engine.evaluate"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles():
    cycles = find_cycles(graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_imported_from_another_module():
    offenders = []
    for module, path in MODULES.items():
        for target, name, line in imports(path):
            private = (name or target.rpartition(".")[2]).startswith("_") and name != "__version__"
            if target.startswith("forgetscope") and private and target != module:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target} {name or ''}")
    assert not offenders, "private names imported across modules:\n" + "\n".join(offenders)


def test_only_global_modules_at_the_package_top():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= GLOBAL_MODULES, f"modules at the package top: {sorted(top - GLOBAL_MODULES)}"
    assert {package_of(m) for m in MODULES} - GLOBAL_MODULES - {""} <= set(ALLOWED)


def test_arrows_point_down_the_line():
    wrong = []
    for module, targets in graph().items():
        own = package_of(module)
        for target in targets:
            other = package_of(target)
            if own in ALLOWED and other in ALLOWED and other != own and other not in ALLOWED[own]:
                wrong.append(f"{module} imports {target}")
            if own in GLOBAL_MODULES and other in ALLOWED:
                wrong.append(f"{module} (a global utility) imports {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def calls(path: Path) -> list[tuple[str, int]]:
    """Names of called functions: `print`, `typer.echo`, ..."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                found.append((func.id, node.lineno))
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                found.append((f"{func.value.id}.{func.attr}", node.lineno))
    return found


@pytest.mark.parametrize("module", [m for m in MODULES if package_of(m) != "cli"])
def test_library_code_neither_imports_typer_nor_prints(module):
    path = MODULES[module]
    assert not [t for t, _, _ in imports(path) if t.split(".")[0] in ("typer", "click")], f"{module} imports typer"
    printing = [f"line {line}: {name}" for name, line in calls(path) if name in ("print", "typer.echo")]
    assert not printing, f"{module} prints (library code returns or raises; the CLI prints): {printing}"
