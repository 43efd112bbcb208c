"""Imports point one way (docs/architecture.md): walked with ast, no module is imported."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each module may import lanchat modules of a lower rank only (same rank: siblings, not allowed).
# A new module must be placed here deliberately.
# `lanchat` is what server, client and lab share; it builds on the standard library alone.
SHARED_RANKS = {
    "lanchat": 0,  # __init__: the version
    "lanchat.wire": 1,
    "lanchat.cliargs": 1,
    "lanchat.platforms": 1,  # every platform-specific call, with its fallback
    "lanchat.netinfo": 2,  # its interface reader is chosen by the platform layer
    "lanchat.protocol": 1,
}
SERVER_RANKS = {
    "chatsrv": 0,  # __init__: the version
    "chatsrv.ratelimit": 0,
    "chatsrv.cookies": 0,
    "chatsrv.store": 1,
    "chatsrv.faults": 1,
    "chatsrv.messages": 1,
    "chatsrv.access": 1,
    "chatsrv.session": 2,
    "chatsrv.rooms": 3,
    "chatsrv.moderation": 3,
    "chatsrv.operators": 3.5,  # uses rooms and moderation; the service builds on it
    "chatsrv.service": 4,
    "chatsrv.tcp": 5,
    "chatsrv.udp": 5,
    "chatsrv.discovery": 5,
    "chatsrv.export": 5,
    "chatsrv.app": 6,
    "chatsrv.__main__": 7,
}
CLIENT_RANKS = {
    "chatclient": 0,
    "chatclient.commands": 1,
    "chatclient.state": 1,
    "chatclient.render": 2,
    "chatclient.transport": 3,
    "chatclient.discovery": 3,
    "chatclient.session": 4,  # the connection's life; both faces drive it
    "chatclient.ui": 5,
    "chatclient.lineui": 5,
    "chatclient.cli": 6,
    "chatclient.__main__": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the modules `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            for alias in node.names:
                found.add(f"{base}.{alias.name}")
    return found


def package_modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def lanchat_imports(path: Path, known: dict[str, int]) -> set[str]:
    return {name for name in imports_of(path) if name in known}


@pytest.mark.parametrize("path", package_modules("lanchat"), ids=lambda p: module_name(p))
def test_shared_package_imports_only_the_stdlib(path: Path) -> None:
    """lanchat (shared by server, client and lab) imports only the stdlib and lower lanchat modules."""
    name = module_name(path)
    assert name in SHARED_RANKS, f"place {name} in SHARED_RANKS (tests/test_layering.py)"
    for imported in imports_of(path):
        top = imported.split(".")[0]
        assert top in sys.stdlib_module_names or top in ("lanchat", "__future__"), f"{name} imports {imported}"
    for imported in lanchat_imports(path, SHARED_RANKS):
        if imported == "lanchat" and name != "lanchat":
            continue
        assert SHARED_RANKS[imported] < SHARED_RANKS[name], f"{name} must not import {imported}"


@pytest.mark.parametrize("path", package_modules("chatsrv"), ids=lambda p: module_name(p))
def test_server_imports_point_down_and_only_stdlib(path: Path) -> None:
    """chatsrv modules import lower layers only, never chatclient, and nothing outside the stdlib."""
    name = module_name(path)
    assert name in SERVER_RANKS, f"place {name} in SERVER_RANKS (tests/test_layering.py)"
    for imported in imports_of(path):
        top = imported.split(".")[0]
        assert top != "chatclient", f"{name} imports {imported}"
        assert top in sys.stdlib_module_names or top in ("chatsrv", "lanchat", "__future__"), (
            f"{name} imports non-stdlib {imported}"
        )
    for imported in lanchat_imports(path, SERVER_RANKS):
        if imported == "chatsrv" and name != "chatsrv":
            continue
        assert SERVER_RANKS[imported] < SERVER_RANKS[name], f"{name} must not import {imported}"


@pytest.mark.parametrize("path", package_modules("chatclient"), ids=lambda p: module_name(p))
def test_client_imports_point_down(path: Path) -> None:
    """chatclient modules import lower layers and the shared package, never chatsrv; prompt_toolkit only in ui."""
    name = module_name(path)
    assert name in CLIENT_RANKS, f"place {name} in CLIENT_RANKS (tests/test_layering.py)"
    for imported in imports_of(path):
        assert imported.split(".")[0] != "chatsrv", f"{name} imports the server's {imported}: shared code lives in lanchat"
        if imported.split(".")[0] == "prompt_toolkit":
            assert name == "chatclient.ui", f"only chatclient.ui may import prompt_toolkit ({name})"
    for imported in lanchat_imports(path, CLIENT_RANKS):
        if imported == "chatclient" and name != "chatclient":
            continue
        assert CLIENT_RANKS[imported] < CLIENT_RANKS[name], f"{name} must not import {imported}"


def test_the_walker_sees_imports() -> None:
    """The checker really finds imports (so the tests above cannot pass vacuously)."""
    assert "lanchat.wire" in imports_of(ROOT / "chatsrv" / "messages.py")
    assert "chatclient.state" in imports_of(ROOT / "chatclient" / "render.py")
