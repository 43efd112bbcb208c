"""The repository stands alone: no tracked file points outside it, and every doc citation resolves.

A reader who clones lanchat has only what is tracked, so a file must never name a path of the machine it was
written on or a document that is not in the repository. Code cites the repository's own documents instead:
`docs/protocol.md §N` (a numbered `## N.` section) and `docs/testing.md #N` (a numbered fact under
"socketserver facts that bite"); both must exist. docs/protocol.md names every payload type and error code the
server's source uses. No Python file is over MAX_LINES lines (issue 13): a reader takes in a module whole, so
a bigger one is split along a seam a reader expects. No sockets, no subprocess other than `git ls-files`.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Directories a walk skips when git is missing: caches, build output, virtual environments.
UNTRACKED_DIRS = {
    ".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
    "build", "dist", ".venv", "venv", ".tox", ".eggs",
}

# Each pattern is a way of naming something outside the repository. The patterns are written so that
# their own source text does not match them (this file is tracked too).
OUTSIDE_REFERENCES = {
    "a parent-directory path": re.compile(r"\.\./+(?:\.\./+)*shared\b|\.\.[/\\]+[A-Za-z_]+/[A-Za-z_]+\.md\b"),
    "the shared folder": re.compile(r"\bshared/+(?:PROTOCOL|TESTING|ARCHITECTURE)\.md", re.IGNORECASE),
    "a document not in docs/": re.compile(r"(?<![\w/])(?:PROTOCOL|TESTING|ARCHITECTURE)\.md\b"),
    "a path of the build machine": re.compile(r"(?<![\w.])/(?:work|home|root)/(?!\s)[\w.+-]+"),
}

# The most lines a tracked .py file may have, tests included. Generated data (the first line of its docstring
# says "generated: do not edit") is exempt: nobody reads it as code.
MAX_LINES = 600
GENERATED_MARK = "generated: do not edit"
# Files over MAX_LINES that are being split right now, each in its own branch. This set is temporary: when those
# splits are merged it must be emptied (the test fails on an entry that is no longer over the limit).
BEING_SPLIT: set[str] = set()

DOC_PATH = re.compile(r"\bdocs/([\w.-]+\.(?:md|txt|png))")
PROTOCOL_CITATION = re.compile(r"docs/protocol\.md\s+(?:§|section\s+)(\d+)((?:\s*,\s*§\d+)*)")
TESTING_CITATION = re.compile(r"docs/testing\.md\s+#(\d+)")
# A section or fact cited without `docs/` cannot be followed from every file (and is not checked above).
BARE_CITATION = re.compile(r"(?<![\w/.])(?:protocol|testing|architecture)\.md\s+[§#]\d+", re.IGNORECASE)


def tracked_files() -> list[Path]:
    """The files git tracks; a walk of the tree (without caches) when git or the .git data is missing."""
    try:
        listing = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        listing = b""
    if listing:
        return [ROOT / name for name in listing.decode("utf-8").split("\0") if name]
    found = []
    for directory, subdirectories, names in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in UNTRACKED_DIRS and not d.endswith(".egg-info")]
        found.extend(Path(directory) / name for name in names if name != ".git")  # a worktree's .git is a file
    return found


def text_files() -> dict[str, str]:
    """Relative path -> text of every tracked file that is UTF-8 text (images and other binaries skipped)."""
    texts = {}
    for path in tracked_files():
        try:
            data = path.read_bytes()
        except OSError:  # tracked but deleted in the work tree
            continue
        if b"\0" in data:
            continue
        try:
            texts[path.relative_to(ROOT).as_posix()] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def outside_references(texts: dict[str, str]) -> list[str]:
    """'path:line: what (matched text)' for every reference to something outside the repository."""
    problems = []
    for name, text in sorted(texts.items()):
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in OUTSIDE_REFERENCES.items():
                for match in pattern.finditer(line):
                    problems.append(f"{name}:{number}: {what} ({match.group(0)!r})")
    return problems


def protocol_sections(protocol: str) -> set[int]:
    """The numbers of the `## N. Title` sections of docs/protocol.md."""
    return {int(number) for number in re.findall(r"^## (\d+)\. \S", protocol, re.MULTILINE)}


def numbered_facts(testing: str) -> set[int]:
    """The numbers of the facts listed under the "socketserver facts that bite" heading of docs/testing.md."""
    heading = r"^##+ [^\n]*socketserver facts that bite[^\n]*\n(.*?)(?=^## |\Z)"
    section = re.search(heading, testing, re.MULTILINE | re.DOTALL)
    if section is None:
        return set()
    return {int(number) for number in re.findall(r"^(\d+)\. \S", section.group(1), re.MULTILINE)}


def broken_citations(texts: dict[str, str], tracked: set[str]) -> list[str]:
    """Citations in `texts` of docs/ files, protocol sections and testing facts that do not exist.

    `tracked` holds the relative paths that exist; the two documents are read from `texts`.
    """
    protocol = protocol_sections(texts.get("docs/protocol.md", ""))
    facts = numbered_facts(texts.get("docs/testing.md", ""))
    problems = []
    for name, text in sorted(texts.items()):
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{name}:{number}"
            for match in DOC_PATH.finditer(line):
                if f"docs/{match.group(1)}" not in tracked:
                    problems.append(f"{where}: docs/{match.group(1)} is not in the repository (or not tracked)")
            for match in PROTOCOL_CITATION.finditer(line):
                cited = [int(match.group(1))] + [int(n) for n in re.findall(r"\d+", match.group(2))]
                problems.extend(f"{where}: docs/protocol.md has no section {n}" for n in cited if n not in protocol)
            for match in TESTING_CITATION.finditer(line):
                if int(match.group(1)) not in facts:
                    problems.append(f"{where}: docs/testing.md has no fact #{match.group(1)}")
            for match in BARE_CITATION.finditer(line):
                problems.append(f"{where}: cite {match.group(0)!r} with its folder, as docs/...")
    return problems


def is_generated(source: str) -> bool:
    """Whether the first line of the module's docstring marks it as generated data."""
    try:
        docstring = ast.get_docstring(ast.parse(source))
    except SyntaxError:
        return False
    return docstring is not None and GENERATED_MARK in docstring.split("\n", 1)[0]


def over_the_limit(texts: dict[str, str]) -> dict[str, int]:
    """Relative path -> number of lines of every .py file over MAX_LINES that is not generated."""
    counts = {path: len(text.splitlines()) for path, text in texts.items() if path.endswith(".py")}
    return {path: lines for path, lines in counts.items() if lines > MAX_LINES and not is_generated(texts[path])}


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return text_files()


def test_no_tracked_file_names_a_path_outside_the_repository(texts: dict[str, str]) -> None:
    """No tracked file names a parent-directory path, the shared notes or a path of the build machine."""
    assert "README.md" in texts and "chatsrv/service.py" in texts, "the file listing found nothing"
    problems = outside_references(texts)
    assert not problems, "references outside the repository:\n" + "\n".join(problems)


def test_every_cited_section_and_fact_exists(texts: dict[str, str]) -> None:
    """Every `docs/protocol.md §N`, `docs/testing.md #N` and `docs/NAME` cited in a tracked file exists."""
    tracked = {path.relative_to(ROOT).as_posix() for path in tracked_files()}
    problems = broken_citations(texts, tracked)
    assert not problems, "citations that lead nowhere:\n" + "\n".join(problems)


def test_the_protocol_core_sections_are_numbered() -> None:
    """docs/protocol.md has the version 1 core as sections 1 to 6 with the titles code relies on."""
    protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for title in ("1. Payload", "2. Transports", "3. Sequence numbers", "4. Client to server",
                  "5. Server to client", "6. Rules and error codes"):
        assert re.search(rf"^## {re.escape(title)}\b", protocol, re.MULTILINE), title


def server_vocabulary() -> tuple[set[str], set[str]]:
    """The payload types the server accepts or sends, and its error codes, as its source spells them."""
    from chatsrv.messages import PARSERS

    modules = [path for package in ("chatsrv", "lanchat") for path in (ROOT / package).rglob("*.py")]
    source = "\n".join(path.read_text(encoding="utf-8") for path in modules)
    written = re.findall(r'"type":\s*"(\w+)"|\{"type":"(\w+)"|get\("type"\)\s*==\s*"(\w+)"', source)
    types = set(PARSERS) | {name for found in written for name in found if name}
    codes = set(re.findall(r'ProtocolError\(\s*"(\w+)"|"code":\s*"(\w+)"', source))
    return types, {code for found in codes for code in found if code}


def test_the_protocol_names_every_type_and_error_code() -> None:
    """Every payload type the server accepts or sends is in the index of docs/protocol.md, every error code in §7.3."""
    protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    index = protocol[protocol.index("\n## 11. ") :]
    codes_table = protocol[protocol.index("\n### 7.3 ") : protocol.index("\n## 8. ")]
    types, codes = server_vocabulary()
    assert len(types) >= 30 and len(codes) >= 13, (types, codes)  # the scan really found the server's vocabulary
    missing_types = [name for name in sorted(types) if f"`{name}`" not in index]
    missing_codes = [code for code in sorted(codes) if f"| `{code}` |" not in codes_table]
    assert not missing_types, f"payload types missing from docs/protocol.md §11: {missing_types}"
    assert not missing_codes, f"error codes missing from docs/protocol.md §7.3: {missing_codes}"


def test_the_checks_see_what_they_look_for() -> None:
    """Planted references and citations are reported, so the tests above cannot pass vacuously."""
    # Each plant is split in two so that this file's own text does not hold a real reference.
    planted = {
        "a.py": "# see ../" + "shared/notes\n",
        "b.md": "as PROTOCOL" + ".md says",
        "c.py": "'/wo" + "rk/main/x'",
        "d.txt": "in shared/" + "testing.md",
    }
    found = outside_references(planted)
    assert [line.split(":")[0] for line in found] == ["a.py", "b.md", "c.py", "d.txt"], found
    assert not outside_references({"e.py": "docs/protocol.md, docs/testing.md #1, a/b, x/../y.py"})
    docs = "docs" + "/"
    documents = {"docs/protocol.md": "## 2. Transports\n", "docs/testing.md": "## socketserver facts that bite\n1. x\n"}

    def cite(document: str, where: str) -> str:
        return docs + document + ".md " + where

    line = "; ".join([cite("protocol", "§9"), cite("protocol", "§2, §8"), cite("testing", "#4"), cite("testing", "#1")])
    line += f" {docs}n.md"
    citing = {"f.py": line, "g.py": "(TESTING" + ".md #2)"}
    cited = broken_citations(documents | citing, set(documents))
    assert cited == [
        f"f.py:1: {docs}n.md is not in the repository (or not tracked)",
        "f.py:1: docs/protocol.md has no section 9",
        "f.py:1: docs/protocol.md has no section 8",
        "f.py:1: docs/testing.md has no fact #4",
        "g.py:1: cite 'TESTING" + ".md #2' with its folder, as docs/...",
    ], cited
    assert protocol_sections("## 1. Payload\n## 2. Transports\n### 3. Not a section\n") == {1, 2}
    facts = numbered_facts("## Other\n8. no\n## socketserver facts that bite\n1. one\n2. two\n## Next\n3. three\n")
    assert facts == {1, 2}


def test_no_python_file_is_over_the_line_limit(texts: dict[str, str]) -> None:
    """Every tracked .py file has at most MAX_LINES lines, except generated data and the files BEING_SPLIT."""
    over = over_the_limit(texts)
    assert "chatsrv/confusables_data.py" in texts, "the file listing found nothing"
    too_long = {path: lines for path, lines in over.items() if path not in BEING_SPLIT}
    assert not too_long, f"over {MAX_LINES} lines (split along a seam a reader expects): {too_long}"
    done = sorted(path for path in BEING_SPLIT if path not in over)
    assert not done, f"no longer over {MAX_LINES} lines: remove from BEING_SPLIT (tests/test_repository.py): {done}"


def test_the_line_limit_sees_long_files_and_spares_generated_data() -> None:
    """A planted long module is reported; the same length marked generated, or not Python, is not."""
    long_body = "x = 1\n" * MAX_LINES
    planted = {
        "long.py": '"""A module."""\n' + long_body,
        "short.py": long_body,
        "data.py": f'"""Tables, {GENERATED_MARK}.\n\nMore."""\n' + long_body,
        "later.py": f'"""A module.\n\nNot {GENERATED_MARK}: only the first line counts."""\n' + long_body,
        "notes.md": "line\n" * (MAX_LINES + 1),
    }
    assert over_the_limit(planted) == {"long.py": MAX_LINES + 1, "later.py": MAX_LINES + 3}
