"""The lab sits on top: it may use chatsrv and chatclient, nothing imports it, matplotlib only when drawing."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = sorted((ROOT / "lanchat_lab").glob("*.py"))


def top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", LAB, ids=lambda p: p.stem)
def test_lab_imports_stdlib_and_lanchat_only_at_module_level(path: Path) -> None:
    """No third-party import at module level: `chatlab` runs without matplotlib."""
    allowed = set(sys.stdlib_module_names) | {"__future__", "lanchat", "chatsrv", "chatclient", "lanchat_lab"}
    assert top_level_imports(path) <= allowed


def test_server_and_client_never_import_the_lab() -> None:
    """lanchat, chatsrv and chatclient stay independent of the lab (imports point one way)."""
    for package in ("lanchat", "chatsrv", "chatclient"):
        for path in (ROOT / package).rglob("*.py"):
            assert "lanchat_lab" not in path.read_text(encoding="utf-8"), path


def test_plot_without_matplotlib_says_how_to_install() -> None:
    """With matplotlib missing, --plot is refused in one line that names the extra to install."""
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from lanchat_lab.cli import main\n"
        "sys.exit(main(['sticky', '--plot', 'never.png']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "pip install 'lanchat[lab]'" in done.stderr
    assert not (ROOT / "never.png").exists()


def test_every_chatlab_command_in_the_docs_is_valid() -> None:
    """The commands the worksheets and README show parse with chatlab's own parser."""
    import shlex

    from lanchat_lab.cli import build_parser

    parser = build_parser()
    found = 0
    for name in ("docs/lab.md", "docs/lab.zh.md", "README.md"):
        for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
            text = line.strip().strip("|").strip()
            for piece in text.split("`"):
                piece = piece.strip().removeprefix("$ ").removeprefix("sudo ")
                if not piece.startswith("chatlab ") or any(word in piece for word in ("SCENARIO", "场景", "实验名")):
                    continue
                words = shlex.split(piece.split("#")[0])
                if words[1].endswith(":") or "：" in words[1]:
                    continue  # the first line of a sample report (English or Chinese), not a command
                parser.parse_args(words[1:])
                found += 1
    assert found >= 20
