"""Errors in plain words (chatclient.plainwords): every code a student can cause has a sentence saying what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatclient.plainwords import SENTENCES, explain
from chatclient.state import ClientState

PROTOCOL = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def documented_codes() -> set[str]:
    """The error codes of docs/protocol.md §7.3 (every code the server sends, core and extensions)."""
    table = re.search(r"### 7\.3 Error codes\n(.*?)\n## ", PROTOCOL, re.DOTALL)
    assert table, "docs/protocol.md lost its table of error codes"
    codes = set(re.findall(r"^\| `([a-z_]+)` \|", table.group(1), re.MULTILINE))
    assert {"bad_request", "auth_failed", "not_allowed"} <= codes
    return codes


def test_every_documented_code_has_a_sentence() -> None:
    assert documented_codes() <= set(SENTENCES)


@pytest.mark.parametrize("code", sorted(SENTENCES))
def test_a_sentence_keeps_the_facts_and_hides_the_code(code: str) -> None:
    """The code itself is not shown to people; the server's message (a length, a wait) is, when it adds facts."""
    text = explain(code, "wait 3 s")
    assert code not in text
    assert text[0].isupper() and text.endswith(".")
    if "{message}" in SENTENCES[code][0]:
        assert "wait 3 s" in text


def test_what_students_met_in_class() -> None:
    assert explain("text_invalid", "text must be 1 to 2000 characters after stripping spaces") == (
        "That text was not sent (text must be 1 to 2000 characters after stripping spaces): "
        "change it and send it again (Up brings the line back)."
    )
    assert explain("not_allowed", "you are muted by teacher for 4 more minute(s)") == (
        "Not allowed: you are muted by teacher for 4 more minute(s)."
    )
    assert explain("auth_failed", "this server needs a password") == "This server needs a password."
    assert explain("something_new", "") == "The server refused that (something_new): no reason given."


def test_the_state_shows_sentences_to_people_and_codes_to_scripts() -> None:
    error = {"type": "error", "code": "rate_limited", "message": "you are sending too fast; slow down"}
    person = ClientState(nick="alice")
    [line] = person.apply(error, 0.0)
    assert line.kind == "error" and line.text.startswith("Too fast (you are sending too fast; slow down): wait")
    script = ClientState(nick="alice", codes=True)
    [line] = script.apply(error, 0.0)
    assert line.text == (
        "rate_limited: you are sending too fast; slow down "
        "[wait a moment, then send it again (Up brings the line back)]"
    )
    [line] = script.apply({"type": "error", "code": "not_allowed", "message": "you are muted"}, 0.0)
    assert line.text == "not_allowed: you are muted"  # nothing to add: the server's message says it all
