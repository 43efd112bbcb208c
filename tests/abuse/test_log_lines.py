"""Attack: a peer writes the teacher's console (T2 items 2 and 3).

A message type, a nick or a room name goes into log lines; raw, an ESC
sequence clears or retitles the teacher's terminal and a newline forges a
line of its own. And a script repeating a bad frame wrote one line per
frame (megabytes a minute). Now every record is escaped by the filter that
chatsrv's logging set-up installs (chatsrv.consolelog.SafeLogFilter), and protocol
errors get a few lines per address per interval (chatsrv.mistakes.MistakeLog).
"""

from __future__ import annotations

import logging
import socket

import pytest

from chatsrv.consolelog import SafeLogFilter, log_safe
from chatsrv.mistakes import BURST, DEFAULT_INTERVAL
from chatsrv.service import ChatService
from lanchat.wire import encode_frame, encode_payload
from tests.integration.test_cli import finish, start_server
from tests.support.fakes import Clock, connect, send

CLEAR_AND_RETITLE = "\x1b[2J\x1b[H\x1b]0;owned\x07"
FORGED = "x\n17:00:00 WARNING alice: 20 errors"


def test_log_safe_escapes_controls_format_characters_and_separators() -> None:
    assert log_safe(CLEAR_AND_RETITLE) == "\\x1b[2J\\x1b[H\\x1b]0;owned\\x07"
    assert log_safe(FORGED) == "x\\n17:00:00 WARNING alice: 20 errors"
    assert log_safe("a\u202eb\u2028c\u200bd\U000e0041") == "a\\u202eb\\u2028c\\u200bd\\U000e0041"
    assert log_safe("李雷 joined #maths") == "李雷 joined #maths"


def test_the_filter_rewrites_the_message_and_keeps_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("chatsrv", logging.INFO, __file__, 1, "type %r from %s", (FORGED, "x"), None)
        record.exc_text = "Traceback (most recent call last):\n  line\nValueError: boom"
    assert SafeLogFilter().filter(record)
    assert "\n" not in record.getMessage() and "\\n17:00:00" in record.getMessage()
    assert record.exc_text.count("\n") == 2


@pytest.mark.timeout(30)
def test_the_console_gets_no_escape_codes_and_no_forged_line() -> None:
    """T2's console.py against the real command: its stderr has no ESC and no line the peer wrote."""
    process, port = start_server("--log-level", "info")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(encode_frame(encode_payload({"type": CLEAR_AND_RETITLE}))
                         + encode_frame(encode_payload({"type": FORGED})))
            received = b""
            while b"20 errors" not in received:  # both answered: both were logged before (bounded by the timeout)
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    finally:
        finish(process)
    assert "unknown message type" in stderr
    assert "\x1b" not in stderr and "\x07" not in stderr
    assert not [line for line in stderr.splitlines() if line.startswith("17:00:00")]


def test_protocol_errors_are_a_few_lines_per_address_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    """19 bad payloads from one address: BURST info lines; after the interval the next says how many were left out."""
    caplog.set_level(logging.INFO, logger="chatsrv")
    clock = Clock()
    service = ChatService(clock=clock, max_errors=1000)
    session, _ = connect(service, host="10.0.0.9")
    for _ in range(19):
        send(service, session, type="nonsense")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "protocol error" in r.getMessage()]
    assert len(lines) == BURST
    clock.now += DEFAULT_INTERVAL
    send(service, session, type="nonsense")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "protocol error" in r.getMessage()]
    assert len(lines) == BURST + 1 and f"{19 - BURST} more" in lines[-1]
    other, _ = connect(service, host="10.0.0.10")
    send(service, other, type="nonsense")  # another address is not silenced by the first
    assert "10.0.0.10" in caplog.records[-1].getMessage()
