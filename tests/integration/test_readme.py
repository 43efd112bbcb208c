"""The README's promises: its tiny client works, its set-up commands are the CI's."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_tiny_client_talks_to_the_server(server, capsys) -> None:
    """The 20-line Python client in the README joins and gets its own message back."""
    block = re.search(r"A 20-line client.*?```python\n(.*?)```", README, re.DOTALL)
    assert block, "the README lost its tiny client"
    code = block.group(1).replace("9009", str(server.port))
    assert len(code.strip().splitlines()) <= 25
    namespace: dict[str, object] = {}
    try:
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - running our own README
    finally:
        sock = namespace.get("sock")
        if sock is not None:
            sock.close()  # type: ignore[attr-defined]
    printed = capsys.readouterr().out.splitlines()
    assert "'type': 'welcome'" in printed[0] and "hello from 20 lines" in printed[1]


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs exactly the README's test command."""
    command = "pip install -e '.[test]' && python -m pytest"
    assert command in README and "pip install -e . && chatsrv" in README
    assert command in (ROOT / ".ci" / "run").read_text()
