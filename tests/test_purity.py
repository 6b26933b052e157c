"""The core is pure: no I/O, no clock, no threads, no global randomness (docs/adr/0001-core-and-twin.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import gpupool.core

CORE = Path(gpupool.core.__file__).parent
FORBIDDEN_MODULES = {
    "os", "sys", "io", "time", "datetime", "random", "pathlib", "socket", "threading",
    "multiprocessing", "subprocess", "asyncio", "logging", "shutil", "tempfile", "urllib",
    "http", "sqlite3", "json", "yaml", "secrets", "uuid",
}  # fmt: skip
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "hash"}


def test_core_modules_import_no_io_clock_or_randomness() -> None:
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                if n.split(".")[0] in FORBIDDEN_MODULES:
                    offenders.append(f"{path.name}: imports {n}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_CALLS
            ):
                offenders.append(f"{path.name}:{node.lineno}: calls {node.func.id}()")
    assert not offenders, offenders


def test_core_has_no_simulation_switch() -> None:
    # "No `if simulate:` anywhere": no identifier in the core mentions simulation.
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            ident = (
                node.id if isinstance(node, ast.Name)
                else node.attr if isinstance(node, ast.Attribute)
                else node.arg if isinstance(node, ast.arg)
                else ""
            )  # fmt: skip
            assert "simul" not in ident.lower(), f"{path.name}:{getattr(node, 'lineno', 0)}: {ident}"
