"""Attack: hidden text in a message (T2 item 7).

`ok!` with 24 variation selectors (U+E0100 + byte) after it carries
b"meet at 3, bring answers" that nobody sees; the client, the exports and
the text door each escaped differently, and the text door passed
zero-width spaces, tag characters and U+2028 raw. Now one rule
(lanchat.display) serves all three, and shows variation selectors as
escapes except where they select a visible variant (VS15/VS16 after an
emoji-like symbol, U+E0100–U+E01EF after a Han ideograph).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from chatclient.render import sanitize
from chatsrv.export import json_line, printable
from chatsrv.textdoor import escape
from lanchat.display import safe_text

SECRET = b"meet at 3, bring answers"
HIDDEN = "ok!" + "".join(chr(0xE0100 + byte) for byte in SECRET[:8]) + " fine" + "".join(
    chr(0xE0100 + byte) for byte in SECRET[8:16]
)

DISPLAYS = {"client": sanitize, "export": printable, "text door": escape, "shared": safe_text}


@pytest.mark.parametrize("display", DISPLAYS.values(), ids=DISPLAYS.keys())
def test_variation_selectors_carrying_bytes_are_shown(display: Callable[[str], str]) -> None:
    shown = display(HIDDEN)
    assert not any(0xE0100 <= ord(char) <= 0xE01EF for char in shown)
    assert shown.startswith("ok!\\U000e016d\\U000e0165")  # 'm', 'e' of the secret, visible


@pytest.mark.parametrize("display", DISPLAYS.values(), ids=DISPLAYS.keys())
@pytest.mark.parametrize("hidden", ["a\u200bb", "a\U000e0041b", "a\u2028b", "a\u202eb", "a\ufeffb", "a\ufe01b"])
def test_every_display_escapes_invisible_characters(display: Callable[[str], str], hidden: str) -> None:
    shown = display(hidden)
    assert shown.startswith("a\\") and shown.endswith("b") and hidden[1] not in shown


@pytest.mark.parametrize("display", DISPLAYS.values(), ids=DISPLAYS.keys())
@pytest.mark.parametrize(
    "visible",
    ["❤\ufe0f", "1\ufe0f\u20e3", "👨\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "葛\U000e0100", "☺\ufe0e", "李雷", "Алёна"],
)
def test_variants_that_show_something_stay(display: Callable[[str], str], visible: str) -> None:
    assert display(visible) == visible


def test_a_selector_after_a_selector_is_shown() -> None:
    assert safe_text("❤\ufe0f\ufe0f") == "❤\ufe0f\\ufe0f"
    assert safe_text("葛\U000e0100\U000e0101") == "葛\U000e0100\\U000e0101"
    assert safe_text("a\U000e0100") == "a\\U000e0100"  # an ideographic selector after a Latin letter


def test_the_client_still_compacts_long_runs_and_the_jsonl_export_escapes_the_same() -> None:
    assert sanitize("x" + "\u200b" * 200 + "y") == "x⟨200 × U+200B⟩y"
    line = json_line({"text": HIDDEN})
    assert json.loads(line)["text"] == HIDDEN  # nothing lost for scripts
    assert "\\udb40\\udd6d" in line  # U+E016D as a JSON escape, visible to a reader
