"""The benchmark package's shape (scripts/lanchat_bench): imports point one way, small files, every scenario registered.

Walked with ast; imports under `if TYPE_CHECKING:` are for annotations and do not count.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
PACKAGE = SCRIPTS / "lanchat_bench"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from lanchat_bench.scenarios import REGISTRY  # scripts/ is not on the default path

# Each module may import lanchat_bench modules of a lower rank only. A new module is placed here deliberately;
# a new scenario module goes in at rank 5 (the registry, rank 6, imports it).
RANKS = {
    "lanchat_bench": 0,  # __init__: the package docstring only
    "lanchat_bench.procstat": 0,
    "lanchat_bench.records": 0,
    "lanchat_bench.conn": 1,
    "lanchat_bench.codecs": 2,
    "lanchat_bench.loop": 3,
    "lanchat_bench.launchers": 3,
    "lanchat_bench.attacks": 3,
    "lanchat_bench.threadprobe": 3,
    "lanchat_bench.scenarios.base": 4,
    "lanchat_bench.scenarios.abuse": 5,
    "lanchat_bench.scenarios.fanout": 5,
    "lanchat_bench.scenarios.latency": 5,
    "lanchat_bench.scenarios.scale": 5,
    "lanchat_bench.scenarios.slow": 5,
    "lanchat_bench.scenarios.store": 5.5,  # store and ceiling run fanout's run: above it, below the registry
    "lanchat_bench.scenarios.ceiling": 5.5,
    "lanchat_bench.scenarios": 6,
    "lanchat_bench.runner": 7,
    "lanchat_bench.report": 7,
    "lanchat_bench.cli": 8,
    "lanchat_bench.scenarios.cluster": 5.5,  # B2: runs fanout, latency and scale (rank 5) in one run
}
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SCRIPTS).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports_of(path: Path) -> set[str]:
    """Absolute names `path` imports at run time (relative imports resolved, TYPE_CHECKING blocks skipped)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while pending:
        node = pending.pop()
        if is_type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_bench_imports_point_down_and_only_the_stdlib(path: Path) -> None:
    name = module_name(path)
    assert name in RANKS, f"place {name} in RANKS (tests/unit/test_bench_layout.py)"
    for imported in imports_of(path):
        top = imported.split(".")[0]
        assert top in sys.stdlib_module_names or top in ("lanchat_bench", "__future__"), f"{name} imports {imported}"
        if imported in RANKS and imported != name:
            assert RANKS[imported] < RANKS[name], f"{name} must not import {imported}"


def test_the_walker_sees_imports_and_skips_type_checking_blocks() -> None:
    """The checker finds real imports (so the test above cannot pass vacuously) and ignores annotation-only ones."""
    assert "lanchat_bench.conn" in imports_of(PACKAGE / "loop.py")
    assert "lanchat_bench.scenarios.fanout" in imports_of(PACKAGE / "scenarios" / "__init__.py")
    assert "lanchat_bench.loop" not in imports_of(PACKAGE / "conn.py")


@pytest.mark.parametrize("path", sorted(SCRIPTS.rglob("*.py")), ids=lambda p: str(p.relative_to(SCRIPTS)))
def test_no_benchmark_file_is_over_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"


def test_every_scenario_module_is_registered() -> None:
    """A scenario is one file plus one registry line: a file without its line would never run."""
    files = {path.stem for path in (PACKAGE / "scenarios").glob("*.py")} - {"__init__", "base"}
    assert files == set(REGISTRY)
