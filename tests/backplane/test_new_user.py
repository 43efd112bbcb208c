"""What a new user who mistypes the backplane URL, or gives one with a password, reads (docs/scale-out.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from chatsrv.app import Server
from chatsrv.cluster import shown_url
from chatsrv.options import build_parser
from tests.backplane.conftest import Redis
from tests.helpers import Client


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/0",  # not Redis
    "127.0.0.1:6379",  # no scheme
    "redis:/127.0.0.1:6379/0",  # one slash
    "redis://127.0.0.1:notaport/0",
    "redis://127.0.0.1:99999/0",
    "redis://127.0.0.1:6379/first",  # a database is a number
])
def test_a_wrong_url_is_one_plain_line_and_exit_code_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["--backplane", url])
    assert stopped.value.code == 2
    said = capsys.readouterr().err.strip()
    assert said.count("\n") == 0 and "Traceback" not in said  # was: redis-py's ValueError and exit code 1
    assert said.startswith("chatsrv: argument --backplane: ") and "redis://HOST:PORT/DB" in said


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://10.0.0.5", "rediss://:pw@host:6380/2",
                                 "unix:///run/redis/redis-server.sock"])
def test_a_good_url_passes(url: str) -> None:
    assert build_parser().parse_args(["--backplane", url]).backplane == url


def test_a_password_in_the_url_is_never_printed(
    redis_server: Redis, make_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    assert shown_url("redis://:s3cret@10.0.0.5:6379/0") == "redis://:***@10.0.0.5:6379/0"
    assert shown_url("redis://teacher:s3cret@10.0.0.5/0") == "redis://teacher:***@10.0.0.5/0"
    assert shown_url("redis://10.0.0.5:6379/0") == "redis://10.0.0.5:6379/0"
    with caplog.at_level(logging.INFO, logger="chatsrv"):
        server = make_server("--backplane", f"redis://:s3cret@127.0.0.1:{redis_server.port}/0")
    assert server.backplane.url == f"redis://:***@127.0.0.1:{redis_server.port}/0"  # the start line prints this
    assert "linked" in caplog.text and "s3cret" not in caplog.text


def test_a_redis_that_refuses_the_link_says_why_in_the_log(
    redis_server: Redis, make_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    # Database 99 does not exist (Redis has 16 by default): before, only "not reachable yet", for ever, no reason.
    with caplog.at_level(logging.WARNING, logger="chatsrv"):
        server = make_server("--backplane", f"redis://127.0.0.1:{redis_server.port}/99")
    assert not server.backplane.linked
    reasons = [record.getMessage() for record in caplog.records if "not reachable" in record.getMessage()]
    assert len(reasons) == 1 and "DB index is out of range" in reasons[0]  # once per reason, not every try


def test_a_member_who_joins_while_redis_is_away_is_told_and_told_again_when_it_is_back(
    redis_server: Redis, make_server: Callable[..., Server]
) -> None:
    redis_server.stop()
    node = make_server("--backplane", redis_server.url)  # started before Redis: it serves alone meanwhile
    assert not node.backplane.linked
    with Client(node.port) as pupil:
        welcome = pupil.join("pupil")
        assert welcome["users"] == ["pupil"]  # only this node's members: the pupil must be told why
        assert "only people on this server" in pupil.expect("notice", event="backplane")["text"]
        redis_server.start()
        back = pupil.expect("notice", event="backplane", timeout=15)
        assert "everyone hears you again" in back["text"]
