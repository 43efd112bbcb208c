"""Worksheet section 9 against a real chatsrv: the tutorial's mistakes get answers that say how to fix them."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest

from lanchat_lab.serverproc import ServerProcess

DEADLINE = 10.0


def exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def answer_to(port: int, data: bytes) -> dict[str, object]:
    """Send raw bytes as a tutorial client would and read the server's one framed answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(data)
        (length,) = struct.unpack("!I", exactly(sock, 4))
        answer: dict[str, object] = json.loads(exactly(sock, length))
        return answer


@pytest.mark.timeout(60)
def test_tutorial_mistakes_get_answers_that_teach_and_the_teacher_sees_one_line_each() -> None:
    """struct.pack('i') and a bare text line: the error says the cause and the fix; the log has one line each."""
    with ServerProcess("127.0.0.1", 0, ["--log-level", "info", "--no-discovery"]) as server:
        port = server.start()
        body = json.dumps({"type": "hello", "nick": "tutorial"}).encode()
        native = answer_to(port, struct.pack("i", len(body)) + body)
        assert native["code"] == "frame_too_large"
        assert "struct.pack('!I', n)" in str(native["message"]) and "native" in str(native["message"])
        text = answer_to(port, b"hello\n")
        assert "frame of 1751477356 bytes" in str(text["message"]) and "'hell'" in str(text["message"])
        assert "chatclient --host HOST --port PORT --nick NAME" in str(text["message"])
        fixed = answer_to(port, struct.pack("!I", len(body)) + body)
        assert fixed["type"] == "welcome"
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            log = server.stderr_text()
            if "'hell'" in log and "native" in log:
                break
            time.sleep(0.02)
    lines = [line for line in log.splitlines() if "frame_too_large" in line or "exceeds the limit" in line]
    assert len(lines) == 2, log
    assert any("struct.pack('i', n)" in line and "struct.pack('!I', n)" in line for line in lines)
    assert any("its 4 bytes are the text 'hell'" in line for line in lines)
