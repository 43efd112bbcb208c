"""The UDP address-validation cookie (docs/protocol.md §2): bound to address and port, fresh, unforgeable."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatsrv.cookies import COOKIE_LIFETIME, CookieMaker
from lanchat.wire import encode_payload, with_seq

NOW = 1_700_000_000.0
ALICE = ("192.0.2.10", 40000)


@pytest.fixture
def maker() -> CookieMaker:
    return CookieMaker(secret=b"k" * 32)


def test_a_fresh_cookie_is_valid_for_its_address(maker: CookieMaker) -> None:
    """A cookie checks out for the address and port it was issued to, within its lifetime."""
    cookie = maker.issue(ALICE, NOW)
    assert maker.check(cookie, ALICE, NOW)
    assert maker.check(cookie, ALICE, NOW + COOKIE_LIFETIME - 1)


def test_wrong_address_is_refused(maker: CookieMaker) -> None:
    """The same cookie from another host is refused."""
    assert not maker.check(maker.issue(ALICE, NOW), ("192.0.2.11", 40000), NOW)


def test_wrong_port_is_refused(maker: CookieMaker) -> None:
    """The same cookie from another port of the same host is refused."""
    assert not maker.check(maker.issue(ALICE, NOW), ("192.0.2.10", 40001), NOW)


def test_expired_cookie_is_refused(maker: CookieMaker) -> None:
    """A cookie older than its 60 s lifetime is refused."""
    cookie = maker.issue(ALICE, NOW)
    assert not maker.check(cookie, ALICE, NOW + COOKIE_LIFETIME + 1)


def test_cookie_from_the_future_is_refused(maker: CookieMaker) -> None:
    """A cookie stamped well after now (a clock trick) is refused."""
    assert not maker.check(maker.issue(ALICE, NOW + 30), ALICE, NOW)


def test_another_servers_cookie_is_refused(maker: CookieMaker) -> None:
    """A cookie made with another secret (another server, or a guess) is refused."""
    other = CookieMaker(secret=b"x" * 32)
    assert not maker.check(other.issue(ALICE, NOW), ALICE, NOW)


def test_tampered_cookie_is_refused(maker: CookieMaker) -> None:
    """Changing any byte of a valid cookie (time stamp or tag) makes it invalid."""
    raw = bytearray(base64.urlsafe_b64decode(maker.issue(ALICE, NOW) + "=="))
    for position in range(len(raw)):
        forged = bytearray(raw)
        forged[position] ^= 0x01
        cookie = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
        assert not maker.check(cookie, ALICE, NOW), position


@given(st.text(max_size=100))
def test_forged_text_is_refused_without_error(cookie: str) -> None:
    """Any string that was not issued is refused, never raises."""
    assert not CookieMaker(secret=b"k" * 32).check(cookie, ALICE, NOW)


def test_two_servers_never_share_a_random_secret() -> None:
    """Without a given secret each server draws its own, so cookies do not travel between runs."""
    assert not CookieMaker().check(CookieMaker().issue(ALICE, NOW), ALICE, NOW)


def test_challenge_fits_three_times_the_smallest_hello(maker: CookieMaker) -> None:
    """The challenge to the smallest valid hello is within the 3x anti-amplification budget."""
    hello = encode_payload({"type": "hello", "nick": "a"})
    challenge = with_seq(encode_payload({"type": "challenge", "cookie": maker.issue(ALICE, NOW)}), 0)
    assert len(challenge) <= 3 * len(hello)
