"""The server's sentences as keys and facts (lanchat.reasons, docs/protocol.md §14), and the client's Chinese.

The table: every key has an English template, each template and word is in
the zh_CN catalogue with the same placeholders, and chatsrv holds no second
English copy. The server: refusals and notices carry `reason` and `args`
beside their English, which is what it always was. The client: in zh_CN
it shows them in Chinese, in the terminal UI's sentence and in line mode,
and falls back to the server's English for anything it cannot render.
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatclient import render
from chatclient.state import ClientState
from chatsrv.service import ChatService
from lanchat import i18n, reasons
from lanchat.wire import ProtocolError
from tests.support.fakes import Clock
from tests.unit.test_operators import SECRET, Member, join

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "lanchat.po"
REFUSED_KICK = "only operators may kick; the teacher becomes one with /op SECRET"
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
# What a Chinese sentence keeps as it is: placeholders, commands, protocol names, quoted field names.
PROTOCOL_WORDS = re.compile(r"\{[^}]*\}|/[a-z]+|IP|ping|hello|null|“[a-z_]+”")


@pytest.fixture
def chinese() -> Iterator[None]:
    i18n.use("zh_CN")
    yield
    i18n.use(i18n.ENGLISH)


# --- the table ------------------------------------------------------------


def _catalogue() -> dict[str, str]:
    from babel.messages.pofile import read_po

    with CATALOGUE.open("rb") as stream:
        return {message.id: message.string for message in read_po(stream) if isinstance(message.id, str)}


def _fields(template: str) -> set[str]:
    return {name for _text, name, _spec, _conversion in string.Formatter().parse(template) if name}


def test_every_key_has_an_english_template_and_its_words() -> None:
    assert len(reasons.REASONS) >= 50
    for key, template in reasons.REASONS.items():
        assert re.fullmatch(r"[a-z][a-z_]*", key), key
        assert template and template == template.strip(), key
        for name in reasons.fields_of(template) & set(reasons.VOCABULARY):
            assert reasons.VOCABULARY[name], name


def test_every_template_and_word_is_extracted_by_babel() -> None:
    """Marked with N_, so `pybabel extract` (what a translator runs) finds them: tests/i18n/test_catalogue.py."""
    pytest.importorskip("babel")
    from tests.i18n.test_catalogue import extracted

    found = extracted()
    english = list(reasons.REASONS.values()) + [w for words in reasons.VOCABULARY.values() for w in words.values()]
    assert [msgid for msgid in english if msgid not in found] == []


def test_every_template_and_word_is_translated_with_the_same_placeholders() -> None:
    pytest.importorskip("babel")
    catalogue = _catalogue()
    english = list(reasons.REASONS.values()) + [w for words in reasons.VOCABULARY.values() for w in words.values()]
    for msgid in english:
        assert catalogue.get(msgid), f"not translated in zh_CN: {msgid!r}"
        assert _fields(catalogue[msgid]) == _fields(msgid), msgid
        assert not LATIN_WORD.search(PROTOCOL_WORDS.sub("", catalogue[msgid])), msgid


def _literals(path: Path) -> Iterator[str]:
    """The string constants of a module, and the fixed parts of its f-strings; docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def test_the_server_holds_no_second_copy_of_the_english() -> None:
    """One source of truth: no string in chatsrv is a template's fixed text (16 characters or more)."""
    segments = {
        text: key
        for key, template in reasons.REASONS.items()
        for text, _name, _spec, _conversion in string.Formatter().parse(template)
        if len(text) >= 16
    }
    copies = [
        (path.name, literal, segments[literal])
        for path in sorted((ROOT / "chatsrv").glob("*.py"))
        for literal in _literals(path)
        if literal in segments
    ]
    assert not copies


@pytest.mark.parametrize(
    ("key", "args"),
    [
        ("no_such_key", {}),
        (None, {}),
        (["op_required"], {}),
        ("op_required", {}),  # a field missing
        ("op_required", {"action": "launch_missiles"}),  # a word not in the vocabulary
        ("op_required", {"action": 3}),
        ("op_required", ["kick"]),  # args not an object
        ("nick_taken", {"nick": ["a"]}),
        ("nick_taken", {"nick": {"a": 1}}),
        ("nick_taken", {"nick": None}),
        ("nick_taken", {"nick": True}),
        ("nick_taken", {"nick": "x" * 401}),
        ("slow_mode", {"gap": "ten", "wait": 3}),  # text where a number is formatted
        ("slow_mode", {"gap": 10**400, "wait": 3}),  # an int too large for a float's format (OverflowError)
        ("nick_taken", {f"f{n}": 1 for n in range(9)} | {"nick": "a"}),  # too many fields
    ],
)
def test_what_does_not_make_a_sentence_renders_nothing(key: Any, args: Any) -> None:
    assert reasons.render(key, args) is None


def test_the_english_is_the_server_text_of_before() -> None:
    assert reasons.say("op_required", action="kick").text == REFUSED_KICK
    assert reasons.say("slow_mode", gap=2.5, wait=3).text == "slow mode: one message every 2.5 s here; wait 3 s"
    with pytest.raises(ValueError):
        reasons.say("op_required", action="fly")


# --- the server -----------------------------------------------------------


@pytest.fixture
def service() -> ChatService:
    return ChatService(clock=Clock(), rate=0, op_secret=SECRET)


def _last(member: Member, kind: str) -> dict[str, Any]:
    found = [p for p in member.take() if p["type"] == kind]
    assert found, kind
    return found[-1]


def test_a_refused_operator_command_says_its_reason(service: ChatService) -> None:
    bob = join(service, "bob")
    join(service, "carol", host="127.0.0.2")
    bob.send(type="kick", nick="carol")
    error = _last(bob, "error")
    assert error == {
        "type": "error", "code": "not_allowed", "message": REFUSED_KICK,
        "reason": "op_required", "args": {"action": "kick"}, "seq": error["seq"],
    }


def test_a_muted_speaker_a_taken_nick_and_the_notices_say_their_reasons(service: ChatService) -> None:
    teacher = join(service, "teacher")
    bob = join(service, "bob", host="127.0.0.2")
    teacher.send(type="op", secret=SECRET)
    teacher.take()
    teacher.send(type="mute", nick="bob", minutes=5)
    told = _last(bob, "notice")
    assert told["reason"] == "muted_you_for" and told["args"] == {"by": "teacher", "minutes": 5}
    assert told["text"] == (
        "teacher muted you for 5 minute(s): you can read and whisper to operators, but the room does not hear you"
    )
    assert _last(teacher, "notice")["reason"] == "you_muted_for"

    bob.send(type="say", text="hello?")
    error = _last(bob, "error")
    assert error["reason"] == "muted_say_for" and error["args"] == {"by": "teacher", "minutes": 5}
    assert error["message"].startswith("you are muted by teacher for 5 more minute(s): you can read")

    carol = Member(service, ("127.0.0.3", 1))
    carol.send(type="hello", nick="bob", room="lobby")
    error = _last(carol, "error")
    assert (error["code"], error["reason"], error["args"]) == ("nick_taken", "nick_taken", {"nick": "bob"})
    assert error["message"] == 'the nick "bob" is already in use'
    carol.send(type="hello", nick="BOB", room="lobby")
    error = _last(carol, "error")
    assert (error["code"], error["reason"]) == ("nick_taken", "nick_lookalike")
    assert error["args"] == {"nick": "BOB", "held": "bob"}
    assert error["message"] == '"BOB" looks too much like "bob", who is here'

    teacher.send(type="topic", text="fractions")
    notice = _last(bob, "notice")
    assert notice["reason"] == "topic_set" and notice["text"] == "teacher set the topic of lobby: fractions"
    assert notice["args"] == {"by": "teacher", "room": "lobby", "topic": "fractions"}

    dave = join(service, "dave", room="other", host="127.0.0.4")
    teacher.send(type="kick", nick="dave")
    notice = _last(teacher, "notice")
    assert (notice["event"], notice["reason"], notice["text"]) == ("kick", "you_kicked", "you kicked dave")
    assert dave.session.closed


def test_a_program_error_has_no_reason() -> None:
    """`bad_request` and the like are for programs: English only, as in version 1."""
    assert ProtocolError("bad_request", "payload must be a JSON object").payload() == {
        "type": "error", "code": "bad_request", "message": "payload must be a JSON object",
    }


# --- the client -----------------------------------------------------------

REFUSAL = {"type": "error", "code": "not_allowed", "message": REFUSED_KICK, "reason": "op_required",
           "args": {"action": "kick"}}


def _shown(payload: dict[str, Any], codes: bool = False) -> str:
    state = ClientState(nick="alice", room="lobby")
    state.codes = codes
    (line,) = state.apply(payload, 100.0)
    return render.plain(line)


def test_the_client_shows_a_refusal_in_chinese(chinese: None) -> None:
    ui = _shown(REFUSAL)
    assert "只有管理员才能踢人；老师用 /op 口令 成为管理员" in ui
    assert not LATIN_WORD.search(ui.replace("/op", "")), ui
    script = _shown(REFUSAL, codes=True)
    assert script.split("] ! ", 1)[1].startswith("not_allowed: 只有管理员才能踢人")  # the code stays for scripts
    assert not LATIN_WORD.search(script.replace("not_allowed", "").replace("/op", "")), script


def test_the_client_shows_a_notice_in_chinese(chinese: None) -> None:
    notice = {"type": "notice", "text": "you kicked dave", "reason": "you_kicked", "args": {"nick": "dave"},
              "event": "kick", "nick": "dave", "ts": 1.0}
    assert _shown(notice).endswith("你踢出了 dave")


@pytest.mark.parametrize(
    "odd",
    [
        {"reason": "from_the_future"},
        {"args": {"action": "rm -rf"}},
        {"args": "kick"},
        {"args": {}},
        {"reason": 7},
    ],
)
def test_the_client_falls_back_to_the_servers_english(chinese: None, odd: dict[str, Any]) -> None:
    shown = _shown({**REFUSAL, **odd})
    assert "only operators may kick" in shown and "只有管理员" not in shown


def test_facts_from_the_server_are_made_safe_to_show(chinese: None) -> None:
    hostile = {"type": "error", "code": "no_such_user", "message": "x", "reason": "no_such_user",
               "args": {"nick": "ev\x1b[2Jil\u202e"}}
    shown = _shown(hostile)
    assert "这里没有叫“ev" in shown and "\x1b" not in shown and "\u202e" not in shown


def test_in_english_the_client_shows_the_server_text_as_sent() -> None:
    assert "only operators may kick" in _shown({**REFUSAL, "message": REFUSED_KICK})
    assert _shown(REFUSAL, codes=True).split("] ! ", 1)[1].startswith(f"not_allowed: {REFUSED_KICK}")


def test_a_bad_nick_says_which_rule_and_reads_chinese(service: ChatService, chinese: None) -> None:
    newcomer = Member(service, ("127.0.0.9", 1))
    newcomer.send(type="hello", nick="a b", room="lobby")
    error = _last(newcomer, "error")
    assert (error["reason"], error["args"]) == ("nick_character", {"char": "' '"})
    assert error["message"] == "nick may contain only letters, digits, marks, '_' and '-' (not ' ')"
    error.pop("seq")
    assert "昵称只能含有字母、数字、附加符号" in _shown(error)
