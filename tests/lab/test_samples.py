"""The worksheet's samples are what the commands print now (docs/lab.md), and the comparison rules work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lanchat import i18n
from lanchat_lab.samples import differences, find_samples, parse_spec, regenerate, run_sample

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", ["lab.md", "lab.zh.md"])
def test_committed_samples_match_what_the_commands_print(name: str) -> None:
    """Every checked sample of the worksheet, run again, differs at most where its marker lets it vary."""
    worksheet = ROOT / "docs" / name
    assert len([s for s in find_samples(worksheet.read_text(encoding="utf-8")) if s.checked]) >= 4
    problems = regenerate(worksheet, check=True)
    assert not problems, f"stale samples; run: python -m lanchat_lab.samples docs/{name}\n" + "\n".join(problems)


def marked(spec: str, body: str) -> str:
    return f"<!-- sample: {spec} -->\n```\n{body}```\n"


def test_a_changed_word_is_stale_a_changed_number_on_a_marked_line_is_not() -> None:
    """numbers: lets digits move on matching lines only; any: lets a whole line change; the line count is fixed."""
    body = "$ chatlab threads\nlongest wait 402.1 ms\nnobody waited\nport 4711 free\n"
    (sample,) = find_samples(marked("chatlab threads; numbers: longest; any: ^port", body))
    assert sample.command == ["chatlab", "threads"]
    assert differences(sample, body) == []
    assert differences(sample, body.replace("402.1", "398.7").replace("4711 free", "80 taken")) == []
    assert differences(sample, body.replace("wait 402.1", "wait  1,402.1")) == []  # a wider number moves columns
    assert differences(sample, body.replace("nobody waited", "the room waited"))  # words changed
    assert differences(sample, body.replace("nobody waited", "nobody waited 3 times"))  # number on an unmarked line
    assert differences(sample, body.replace("longest wait", "shortest wait"))  # words on a marked line
    assert differences(sample, body + "one more line\n")


def test_unchecked_samples_and_bad_markers() -> None:
    """`unchecked` samples are regenerated but never compared; a marker must run chatlab with known rules."""
    assert parse_spec("chatlab restart; unchecked").checked is False
    with pytest.raises(ValueError, match="runs chatlab"):
        parse_spec("rm -rf /")
    with pytest.raises(ValueError, match="unknown sample rule"):
        parse_spec("chatlab sticky; sometimes: x")


def test_regenerate_rewrites_a_stale_sample(tmp_path: Path) -> None:
    """Without --check the block is replaced by what the command prints now."""
    page = tmp_path / "page.md"
    page.write_text("intro\n" + marked("chatlab sticky --messages 3 --big 0", "$ chatlab sticky\nold text\n") + "end\n")
    assert regenerate(page, check=True)  # stale
    regenerate(page, check=False)
    text = page.read_text()
    assert "old text" not in text and "$ chatlab sticky --messages 3 --big 0\nchatlab sticky: 3 short messages" in text
    assert text.startswith("intro\n<!-- sample:") and text.endswith("```\nend\n")
    assert regenerate(page, check=True) == []


def test_the_chinese_worksheets_samples_are_chinese_the_english_ones_english() -> None:
    """docs/lab.zh.md's samples run with --lang zh_CN (and show it); docs/lab.md's never do."""
    han = re.compile(r"[\u4e00-\u9fff]")
    chinese = find_samples((ROOT / "docs" / "lab.zh.md").read_text(encoding="utf-8"))
    english = find_samples((ROOT / "docs" / "lab.md").read_text(encoding="utf-8"))
    for sample in chinese:
        assert sample.command[-2:] == ["--lang", "zh_CN"], sample.shell
        assert sample.body.startswith(f"$ {sample.shell}\n") and han.search(sample.body.split("\n", 1)[1]), sample.shell
    for sample in english:
        assert "--lang" not in sample.command and not han.search(sample.body), sample.shell


def test_a_sample_in_chinese_leaves_the_language_as_it_was() -> None:
    """chatlab --lang chooses the language of the whole process: run_sample puts the one before back."""
    (sample,) = find_samples(marked("chatlab sticky --messages 3 --big 0 --lang zh_CN", "$ x\n"))
    before = i18n.language()
    assert "条" in run_sample(sample)
    assert i18n.language() == before
