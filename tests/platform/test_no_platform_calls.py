"""Only the platform layer touches what one system has and another lacks (walked with ast, nothing imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chatsrv", "chatclient", "lanchat", "lanchat_lab")
PLATFORM_LAYER = {"lanchat/platforms.py"}

UNIX_ONLY_MODULES = {"resource", "fcntl", "termios"}
# Names that exist on some systems only: TCP_INFO (Linux's layout), SIGHUP
# (not Windows), SIGBREAK and SO_EXCLUSIVEADDRUSE (Windows only).
PLATFORM_NAMES = {"TCP_INFO", "SIGHUP", "SIGBREAK", "SO_EXCLUSIVEADDRUSE"}

# Files allowed one platform-specific use each, with the reason. Nothing else.
EXCEPTIONS: set[tuple[str, str]] = set()  # (file, name) pairs allowed to bypass the platform layer, each with a reason


def python_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def platform_uses(path: Path) -> set[str]:
    """The Unix-only modules imported and the platform-only names used (as attributes or strings) in `path`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names} & UNIX_ONLY_MODULES
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module.split(".")[0]} & UNIX_ONLY_MODULES
            found |= {alias.name for alias in node.names} & PLATFORM_NAMES
        elif isinstance(node, ast.Attribute) and node.attr in PLATFORM_NAMES:
            found.add(node.attr)
        elif isinstance(node, ast.Name) and node.id in PLATFORM_NAMES:
            found.add(node.id)
        elif isinstance(node, ast.Constant) and node.value in PLATFORM_NAMES | UNIX_ONLY_MODULES:
            found.add(str(node.value))  # getattr(socket, "TCP_INFO"), importlib.import_module("fcntl")
    return found


@pytest.mark.parametrize("path", python_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_only_the_platform_layer_uses_platform_specific_calls(path: Path) -> None:
    """No module outside lanchat/platforms.py imports resource/fcntl/termios or names TCP_INFO, SIGHUP and the like."""
    name = path.relative_to(ROOT).as_posix()
    if name in PLATFORM_LAYER:
        return
    uses = {use for use in platform_uses(path) if (name, use) not in EXCEPTIONS}
    assert not uses, f"{name} uses {sorted(uses)} directly: go through lanchat.platforms"


def test_every_exception_is_still_needed() -> None:
    """An exception whose file no longer needs it is removed from the list (so the list stays honest)."""
    for name, use in EXCEPTIONS:
        assert use in platform_uses(ROOT / name), f"({name!r}, {use!r}) is no longer needed in EXCEPTIONS"


def test_the_walker_finds_each_kind_of_use(tmp_path: Path) -> None:
    """The checker sees imports, attributes, from-imports and getattr strings (it cannot pass vacuously)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import resource\nfrom fcntl import ioctl\nimport signal, socket\n"
        "signal.SIGHUP\nx = getattr(socket, 'TCP_INFO', None)\nfrom socket import SO_EXCLUSIVEADDRUSE\n",
        encoding="utf-8",
    )
    assert platform_uses(sample) == {"resource", "fcntl", "SIGHUP", "TCP_INFO", "SO_EXCLUSIVEADDRUSE"}
    assert platform_uses(ROOT / "lanchat" / "platforms.py") >= {"resource", "fcntl", "TCP_INFO", "SIGHUP"}


def test_the_client_needs_nothing_the_windows_event_loop_lacks() -> None:
    """Windows' Proactor loop has no add_reader/add_writer; the client never calls them (so the default loop serves)."""
    for path in sorted((ROOT / "chatclient").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert not calls & {"add_reader", "add_writer"}, f"{path.name} needs a selector loop"
