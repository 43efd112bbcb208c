"""The worksheets' sample outputs, regenerated from the code so they cannot go stale.

A sample in docs/lab.md (or docs/lab.zh.md) is an HTML comment naming the
command, directly followed by a fenced block that starts with `$ COMMAND`:

    <!-- sample: chatlab sticky; numbers: ^   recv # -->
    ```
    $ chatlab sticky
    ... what it printed ...
    ```

After `;` come the rules for comparing a fresh run with the committed text:
`numbers: REGEX` (on lines matching REGEX the numbers may differ, the words
may not), `any: REGEX` (lines matching REGEX may differ completely, but
their count may not), and `unchecked` (timing decides which lines appear:
regenerated, never compared). Everything else must match exactly.

    python -m lanchat_lab.samples docs/lab.md docs/lab.zh.md           # rewrite the samples
    python -m lanchat_lab.samples --check docs/lab.md docs/lab.zh.md   # exit 1 and say where they differ

Owns the marker format and the comparison. Runs the scenarios in this
process through `lanchat_lab.cli.main`. A Chinese worksheet's commands say `--lang zh_CN`, so its
samples are Chinese. Imports: lanchat_lab.cli, lanchat.i18n.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lanchat import i18n
from lanchat_lab.cli import main as chatlab

MARKER = re.compile(r"^<!-- sample: (?P<spec>.*?) -->\n```\n(?P<body>.*?)```\n", re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


@dataclass
class Sample:
    """One marked sample: its command, its comparison rules and where its text sits in the file."""

    command: list[str]
    numbers: list[re.Pattern[str]] = field(default_factory=list)
    anything: list[re.Pattern[str]] = field(default_factory=list)
    checked: bool = True
    start: int = 0  # of the fenced block's body in the file
    end: int = 0
    body: str = ""

    @property
    def shell(self) -> str:
        return shlex.join(self.command)


def parse_spec(spec: str) -> Sample:
    """`chatlab sticky; numbers: ^recv; unchecked` -> a Sample (without position)."""
    command_text, *rules = (part.strip() for part in spec.split(";"))
    command = shlex.split(command_text)
    if not command or command[0] != "chatlab":
        raise ValueError(f"a sample runs chatlab, not {command_text!r}")
    sample = Sample(command)
    for rule in rules:
        kind, _, pattern = rule.partition(":")
        kind = kind.strip()
        if kind == "numbers":
            sample.numbers.append(re.compile(pattern.strip()))
        elif kind == "any":
            sample.anything.append(re.compile(pattern.strip()))
        elif kind == "unchecked":
            sample.checked = False
        else:
            raise ValueError(f"unknown sample rule {rule!r} (numbers: REGEX, any: REGEX, unchecked)")
    return sample


def find_samples(text: str) -> list[Sample]:
    samples = []
    for found in MARKER.finditer(text):
        sample = parse_spec(found.group("spec"))
        sample.start, sample.end, sample.body = found.start("body"), found.end("body"), found.group("body")
        samples.append(sample)
    return samples


def run_sample(sample: Sample) -> str:
    """The sample's fenced text as the code prints it now: `$ command`, then the output."""
    output = io.StringIO()
    # chatlab chooses its language for the whole process (a Chinese worksheet's commands say --lang zh_CN):
    # the language before the sample is restored after it.
    with (
        contextlib.redirect_stdout(output),
        contextlib.redirect_stderr(io.StringIO()) as errors,
        i18n.temporarily(i18n.language()),
    ):
        code = chatlab(sample.command[1:])
    if code != 0:
        raise RuntimeError(f"{sample.shell} failed with exit code {code}: {errors.getvalue().strip()}")
    return f"$ {sample.shell}\n{output.getvalue().rstrip()}\n"


def _shape(line: str) -> list[str]:
    """A line with its numbers as N and its spacing ignored: a wider number moves the columns after it."""
    return NUMBER.sub("N", line).split()


def differences(sample: Sample, fresh: str) -> list[str]:
    """Where `fresh` differs from the committed sample beyond what its rules let vary ([] when it does not)."""
    old_lines, new_lines = sample.body.splitlines(), fresh.splitlines()
    if len(old_lines) != len(new_lines):
        return [f"{sample.shell}: {len(old_lines)} lines committed, {len(new_lines)} printed now"]
    found = []
    for number, (old, new) in enumerate(zip(old_lines, new_lines), 1):
        if old == new or any(rule.search(old) and rule.search(new) for rule in sample.anything):
            continue
        if any(rule.search(old) for rule in sample.numbers) and _shape(old) == _shape(new):
            continue
        found.append(f"{sample.shell}, line {number}:\n  committed: {old}\n  now:       {new}")
    return found


def regenerate(path: Path, check: bool) -> list[str]:
    """Rewrite (or, with `check`, compare) every sample in `path`; the differences found."""
    text = path.read_text(encoding="utf-8")
    problems: list[str] = []
    pieces: list[str] = []
    position = 0
    for sample in find_samples(text):
        if check and not sample.checked:
            continue
        fresh = run_sample(sample)
        if sample.checked:
            problems += [f"{path}: {problem}" for problem in differences(sample, fresh)]
        pieces += [text[position : sample.start], fresh]
        position = sample.end
    pieces.append(text[position:])
    if not check:
        path.write_text("".join(pieces), encoding="utf-8")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lanchat_lab.samples", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="worksheets with <!-- sample: ... --> markers")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a sample is stale")
    args = parser.parse_args(argv)
    problems = [problem for path in args.files for problem in regenerate(path, args.check)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
