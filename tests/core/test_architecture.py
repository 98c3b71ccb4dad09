"""The package's shape: no import cycle between subpackages, no module over 600 lines, and
the SDK stays light."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import auditkeep

PACKAGE = Path(auditkeep.__file__).parent
TESTS = Path(__file__).resolve().parents[1]
MAX_LINES = 600
# Modules that are data tables (mappings, rule lists) may be longer; none is at present.
DATA_TABLES: frozenset[str] = frozenset()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every auditkeep module ``path`` imports, at any depth (lazy imports in functions and
    imports only for type checking count too: a cycle among them is still a tangle)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
            elif node.module:
                yield node.module


def _unit(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to: auditkeep.store.sqlite -> store."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = _unit(_module_name(path))
        for target in _imports(path):
            if target.split(".")[0] != "auditkeep":
                continue
            unit = _unit(target)
            if unit not in (source, "__init__"):
                graph.setdefault(source, set()).add(unit)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_and_passes_a_chain() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []


def test_the_graph_sees_the_layers() -> None:
    graph = package_graph()
    # ledger writes through store and hashes with log: edges the walk must find
    assert {"store", "log", "model"} <= graph["ledger"]
    assert "store" in graph["server"]


def test_no_import_cycle_between_subpackages() -> None:
    assert cycles(package_graph()) == []


def test_model_and_log_import_no_higher_layer() -> None:
    graph = package_graph()
    assert graph.get("model", set()) <= {"errors"}
    assert graph.get("log", set()) <= {"model", "errors"}


def test_importing_the_sdk_loads_no_database_driver_and_no_ledger() -> None:
    code = (
        "import sys, auditkeep.client\n"
        "print(' '.join(m for m in sys.modules if m in ('sqlite3', 'psycopg', 'multiprocessing')"
        " or m.startswith(('auditkeep.ledger', 'auditkeep.store', 'auditkeep.server'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split() == []


def test_the_wire_types_keep_their_old_homes() -> None:
    from auditkeep.ledger import InclusionProof, Page, Receipt, Record
    from auditkeep.ledger.reader import NotFound
    from auditkeep.model import wire

    assert (Record, Page, Receipt, InclusionProof) == (wire.Record, wire.Page, wire.Receipt, wire.InclusionProof)
    assert NotFound is auditkeep.NotFound
    assert issubclass(NotFound, auditkeep.AuditkeepError)


def test_the_tests_have_one_free_port_and_one_serve_harness() -> None:
    """Support modules build on tests/server_harness.py instead of keeping their own copies."""
    tests = Path(__file__).resolve().parents[1]
    defining = sorted(
        str(path.relative_to(tests))
        for path in tests.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.FunctionDef) and node.name == "free_port"
    )
    assert defining == ["server_harness.py"]
    spawning_serve = sorted(
        str(path.relative_to(tests))
        for path in tests.rglob("*_support.py")
        if re.search(r'"auditkeep\.cli\.main",\s*"serve"', path.read_text())
    )
    assert spawning_serve == []



def _long_modules(root: Path) -> list[str]:
    return sorted(
        f"{path.relative_to(root.parent)}: {lines} lines"
        for path in root.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
        and str(path.relative_to(root.parent)) not in DATA_TABLES
    )


def test_no_module_is_over_600_lines() -> None:
    """Split a long module into modules by job (a data table may be listed in DATA_TABLES)."""
    assert _long_modules(PACKAGE) == []
    assert _long_modules(TESTS) == []


def test_the_line_count_sees_a_long_module(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "pkg" / "short.py").write_text("x = 1\n" * MAX_LINES)
    assert _long_modules(tmp_path / "pkg") == [f"pkg/long.py: {MAX_LINES + 1} lines"]


def test_every_cli_module_imports_on_its_own() -> None:
    """Each ``auditkeep.cli`` module imports in an interpreter that has loaded no other
    auditkeep module: a cycle the static graph cannot see (a group adding its sub-commands
    from a function run at import, whose modules import names from the group) fails here."""
    script = (
        "import importlib, pkgutil, sys\n"
        "import auditkeep.cli as cli\n"
        "names = sorted(f'auditkeep.cli.{m.name}' for m in pkgutil.iter_modules(cli.__path__))\n"
        "assert len(names) > 20, names\n"
        "bad = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m == 'auditkeep' or m.startswith('auditkeep.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", r.stdout
