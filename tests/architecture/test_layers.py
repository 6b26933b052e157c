"""The layers of gpupool and their import contracts, read from the source (ADR 0009).

From the bottom up: ``core`` (the pure scheduling core) imports nothing of gpupool but
itself; ``fleetfile`` (fleet and tenant files) reads into the core; ``sim`` (the digital
twin) drives the core; ``service`` (the live service) drives the core and may run the twin;
``cli`` sits on top. ``web`` is the dashboard's static assets (the service may mount them,
nothing else of it), and ``client`` (the HTTP client) stands alone. Every import counts:
at module level, inside a function, and under ``TYPE_CHECKING`` (a type-only import still
ties a module to another: it is what made the core one object cut into files).

Within the core, no import circle: every part of the cycle reads the pool state and its
peers from below, never the scheduler that drives them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import gpupool

SRC = Path(gpupool.__file__).parent

#: what each package of gpupool may import of gpupool (besides itself); ``cli`` may import all
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "fleetfile": {"core"},
    "sim": {"core", "fleetfile"},
    "service": {"core", "fleetfile", "sim", "web", "translation"},
    "web": set(),
    # the message catalogues' lookup (gettext): a leaf every user-facing layer may use
    "translation": set(),
    "client": {""},  # the package root only (its version)
}
#: third-party packages the pure core may use (arithmetic and sorted containers, no I/O)
CORE_THIRD_PARTY = {"numpy", "scipy", "sortedcontainers"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, wherever it stands."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            # ``from gpupool.core import x`` may import the submodule ``x``
            for a in node.names:
                sub = f"{target}.{a.name}"
                if (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    SRC.parent / Path(*sub.split(".")) / "__init__.py"
                ).exists():
                    yield node.lineno, sub


@cache
def graph() -> dict[str, list[tuple[int, str]]]:
    """Every gpupool module and what it imports (line, module)."""
    return {_module_name(p): list(_imports(p)) for p in sorted(SRC.rglob("*.py"))}


def _package(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    allowed = ALLOWED[package] | {package}
    bad = []
    for mod, imports in graph().items():
        if _package(mod) != package:
            continue
        for line, target in imports:
            if target.split(".")[0] != "gpupool":
                continue
            if _package(target) not in allowed:
                bad.append(f"{mod}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_the_service_uses_web_for_its_static_assets_only() -> None:
    # ``gpupool.web`` is the dashboard's files and ``mount_dashboard``: a runner or a thread
    # the service needs lives in the service (``service.whatif``, ``service.sampler``)
    bad = [
        f"{mod}:{line} imports {target}"
        for mod, imports in graph().items()
        if _package(mod) == "service"
        for line, target in imports
        if target.startswith("gpupool.web.")
    ]
    assert not bad, "\n".join(bad)
    web = [m for m in graph() if _package(m) == "web"]
    assert web == ["gpupool.web"], f"web holds code beyond its assets: {web}"


def test_the_api_imports_no_executor() -> None:
    # the API reads what executors write through neutral modules (``service.log_files``)
    bad = [
        f"{mod}:{line} imports {target}"
        for mod, imports in graph().items()
        if mod.startswith("gpupool.service.api")
        for line, target in imports
        if target.startswith("gpupool.service.executors")
    ]
    assert not bad, "\n".join(bad)


def test_the_core_imports_only_the_standard_library_and_its_arithmetic() -> None:
    bad = []
    for mod, imports in graph().items():
        if _package(mod) != "core":
            continue
        for line, target in imports:
            top = target.split(".")[0]
            if top in ("gpupool", "__future__") or top in sys.stdlib_module_names:
                continue
            if top not in CORE_THIRD_PARTY:
                bad.append(f"{mod}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def _cycles(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sorted(out)


def _edges(prefix: str) -> tuple[set[str], dict[str, set[str]]]:
    g = graph()
    nodes = {m for m in g if m == prefix or m.startswith(prefix + ".")}
    edges: dict[str, set[str]] = {}
    for mod in nodes:
        for _, target in g[mod]:
            # importing ``a.b`` runs ``a`` first: a package's __init__ counts only when
            # imported by name (the core's __init__ imports nothing)
            if target in nodes and target != mod:
                edges.setdefault(mod, set()).add(target)
    return nodes, edges


def test_no_import_circle_in_the_core() -> None:
    nodes, edges = _edges("gpupool.core")
    assert _cycles(nodes, edges) == []


def test_no_import_circle_between_packages() -> None:
    g = graph()
    edges: dict[str, set[str]] = {}
    for mod, imports in g.items():
        for _, target in imports:
            a, b = _package(mod), _package(target)
            if target.startswith("gpupool") and a != b and a and b:
                edges.setdefault(a, set()).add(b)
    assert _cycles(set(edges), edges) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    # the contract above must be able to fail: a two-module circle and a self-import
    assert _cycles({"a", "b", "c"}, {"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert _cycles({"a"}, {"a": {"a"}}) == [["a"]]
