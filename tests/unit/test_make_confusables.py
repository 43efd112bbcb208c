"""scripts/make_confusables.py turns Unicode's confusables.txt into chatsrv/confusables_data.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from chatsrv import confusables_data

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = """\ufeff# confusables.txt
# Date: 2020-02-13, 01:38:49 GMT
# © 2020 Unicode®, Inc.
# Version: 13.0.0
#
0435 ;\t0065 ;\tMA\t# ( е → e ) CYRILLIC SMALL LETTER IE → LATIN SMALL LETTER E\t#

006D ;\t0072 006E ;\tMA\t# ( m → rn ) LATIN SMALL LETTER M → LATIN SMALL LETTER R, LATIN SMALL LETTER N\t#
"""


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_keeps_the_mapping_and_the_notice(tmp_path: Path) -> None:
    """The generated module holds each mapping as hex code points and repeats Unicode's copyright and version."""
    make = load(ROOT / "scripts" / "make_confusables.py", "make_confusables")
    header, pairs = make.read_mapping(SAMPLE)
    assert pairs == [(0x435, [0x65]), (0x6D, [0x72, 0x6E])]
    assert [line.split(":")[0] for line in header] == ["Date", "© 2020 Unicode®, Inc.", "Version"]
    source, output = tmp_path / "confusables.txt", tmp_path / "data.py"
    source.write_text(
        SAMPLE + "".join(f"{code:04X} ;\t0061 ;\tMA\t#\n" for code in range(0x3000, 0x3400)), encoding="utf-8"
    )
    assert make.main([str(source), "--output", str(output)]) == 0
    data = load(output, "generated_confusables")
    assert data.MAPPING.splitlines()[:2] == ["6D 72 6E", "435 65"]
    assert "© 2020 Unicode" in (data.__doc__ or "") and "Version: 13.0.0" in (data.__doc__ or "")
    source.write_text(SAMPLE, encoding="utf-8")  # far too few lines: not a confusables.txt
    assert make.main([str(source), "--output", str(tmp_path / "other.py")]) == 1


def test_committed_data_is_the_full_unicode_table() -> None:
    """The committed table is Unicode 13.0.0's, with thousands of mappings."""
    assert "Version: 13.0.0" in (confusables_data.__doc__ or "")
    assert len(confusables_data.MAPPING.splitlines()) > 6000
