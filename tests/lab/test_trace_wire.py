"""chatclient --trace-wire: one stderr line per recv, showing where frame boundaries fell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chatclient.transport import pending_after, trace_chunk

ROOT = Path(__file__).resolve().parents[2]


def test_trace_of_whole_frames_and_a_started_one() -> None:
    """Two whole frames and the start of a third: sizes and the bytes held are shown."""
    line = trace_chunk(100, [b"x" * 40, b"y" * 30], 0)
    assert line == "recv 100 bytes, 2 complete frames: [4+40] | [4+30] | start of the next frame (22 bytes)"
    assert pending_after(100, [b"x" * 40, b"y" * 30], 0) == 22


def test_trace_of_a_frame_split_over_three_recvs() -> None:
    """A 3000-byte frame read as 1024 + 1024 + 956 bytes: start, middle, end."""
    assert trace_chunk(1024, [], 0) == "recv 1024 bytes, 0 complete frames: start of the next frame (1024 bytes)"
    assert (
        trace_chunk(1024, [], 1024)
        == "recv 1024 bytes, 0 complete frames: middle of a frame (1024 bytes; 2048 of it so far)"
    )
    assert (
        trace_chunk(956, [b"z" * 3000], 2048)
        == "recv 956 bytes, 1 complete frame: end of a frame begun earlier (956 bytes, [4+3000] in all)"
    )


def test_chatclient_trace_wire_prints_every_recv_on_stderr(server) -> None:
    """A real chatclient with --trace-wire: the chat on stdout, a wire line per recv on stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatclient",
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--nick",
            "amy",
            "--trace-wire",
        ],
        check=False,
        input="hello wire\n",
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "<amy> hello wire" in done.stdout and "wire:" not in done.stdout
    wire = [line for line in done.stderr.splitlines() if line.startswith("wire: recv ")]
    assert wire, done.stderr
    # The first recv holds the welcome: one whole frame, nothing held back.
    assert wire[0].startswith("wire: recv ") and "1 complete frame: [4+" in wire[0]
    size = int(wire[0].split()[2])
    payload = int(wire[0].split("[4+")[1].split("]")[0])
    assert size == 4 + payload


def test_trace_wire_in_a_terminal_uses_line_mode(server) -> None:
    """In a real terminal --trace-wire still prints plain lines (the full-screen UI would be torn by them)."""
    import pexpect

    env = dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "chatclient", "--host", "127.0.0.1", "--port", str(server.port), "--nick", "tia", "--trace-wire"],
        cwd=str(ROOT),
        env=env,
        dimensions=(24, 100),
        timeout=10,
        encoding="utf-8",
    )
    try:
        child.expect(r"wire: recv \d+ bytes, 1 complete frame")
        child.expect("you are tia in lobby")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
