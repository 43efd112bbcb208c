"""Scenario `trace-wire`: a real `chatclient --trace-wire` joins a room with a long history.

A `chatsrv` child keeps the room's last messages (`--history`); a plain
socket client, the filler, says that many long messages first, so the
`welcome` the next member gets is several kilobytes. Then `chatclient
--trace-wire` joins, pastes one long line, and leaves once its own message
has come back. Its stderr has one `wire:` line per `recv` (chatclient's own
trace: `chatclient.transport.trace_chunk`); this module only counts them.

On loopback the kernel hands a whole write over at once, so frames arrive
whole. With `--netns-rate RATE` the server and the client run in two network
namespaces joined by a veth limited by `tc ... tbf` (`lanchat_lab.netns`):
the bytes trickle in a segment at a time, and one frame is spread over many
`recv`s, as on a slow Wi-Fi.

Owns the filler and the counting of the trace lines. Imports: lanchat.wire,
lanchat_lab.bots (LabError), lanchat_lab.netns, lanchat_lab.serverproc.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from lanchat.wire import FrameDecoder, decode_payload, encode_frame, encode_payload
from lanchat_lab import netns
from lanchat_lab.bots import LabError
from lanchat_lab.serverproc import ServerProcess, child_environment

ROOM = "lobby"  # chatclient's default room
DEADLINE = 30.0  # seconds for each step; a 1mbit link moves a 20 KB welcome in well under one
_RECV = re.compile(r"^wire: recv (\d+) bytes, (\d+) complete frames?: (.*)$")


@dataclass
class TraceOptions:
    history: int = 20  # messages the filler says (and the server's --history)
    size: int = 500  # characters per filler message
    paste: int = 1800  # characters of the line chatclient pastes
    rate: str | None = None  # tbf rate of the veth, e.g. "1mbit"; None: loopback


def parse_trace(lines: list[str]) -> list[dict[str, Any]]:
    """chatclient's `wire: recv ...` lines -> one dict per recv: size, whole frames, and how the frames fell."""
    recvs = []
    for line in lines:
        match = _RECV.match(line)
        if not match:
            continue
        detail = match.group(3)
        recvs.append(
            {
                "bytes": int(match.group(1)),
                "frames": int(match.group(2)),
                "ends_split_frame": "end of a frame begun earlier" in detail,
                "middle": "middle of a frame" in detail,
                "starts_frame": "start of the next frame" in detail,
                "line": line.removeprefix("wire: "),
            }
        )
    return recvs


def _filler(sock: socket.socket, server: tuple[str, int], options: TraceOptions) -> None:
    """Join, say `history` long messages, wait until the last one comes back (so the room keeps it), leave."""
    with sock:
        sock.settimeout(DEADLINE)
        sock.connect(server)
        sock.sendall(encode_frame(encode_payload({"type": "hello", "nick": "filler", "room": ROOM})))
        last = ""
        for number in range(1, options.history + 1):
            last = f"history line {number} " + "." * max(0, options.size - 20)
            sock.sendall(encode_frame(encode_payload({"type": "say", "text": last})))
        decoder = FrameDecoder(16 * 1024 * 1024)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                raise LabError("the server closed the filler's connection")
            for frame in decoder.feed(data):
                payload = decode_payload(frame)
                if payload.get("type") == "message" and payload.get("text") == last:
                    _leave(sock, deadline)
                    return
        raise LabError(f"the filler's messages did not come back within {DEADLINE:g} s")


def _leave(sock: socket.socket, deadline: float) -> None:
    """bye, then read until the server closes: the filler is gone before the client joins (no `left` in its trace)."""
    sock.sendall(encode_frame(encode_payload({"type": "bye"})))
    while time.monotonic() < deadline:
        if not sock.recv(65536):
            return
    raise LabError("the server did not close the filler's connection after its bye")


def _chatclient(prefix: list[str], server: tuple[str, int], options: TraceOptions) -> tuple[list[str], list[str]]:
    """Run chatclient --trace-wire, paste one line, wait for it to come back, end stdin; its stdout and stderr lines."""
    command = [*prefix, sys.executable, "-m", "chatclient", "--host", server[0], "--port", str(server[1])]
    # --lang en: its `wire:` lines are read by parse_trace, not by people, so not in the machine's language.
    command += ["--nick", "amy", "--room", ROOM, "--trace-wire", "--lang", "en"]
    pasted = "pasted " + "-" * max(0, options.paste - 7)
    return _paste(command, pasted)


def _paste(command: list[str], pasted: str) -> tuple[list[str], list[str]]:
    """Start `command`, write `pasted` and a newline to its stdin, wait for that line on its stdout, end stdin.

    Both outputs are read to their end by a thread each, line by line. Not
    select() on the stdout pipe plus readline(): readline reads what the pipe
    holds into the file object's buffer, and when the reader was late (a
    loaded machine) the echo sits there behind an earlier line while select()
    waits for the pipe, which stays empty; communicate() then reads the pipe
    only, and the echo is lost. Reading stderr at the same time also keeps a
    long trace from filling its pipe and stopping the client.
    """
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_environment(),
    )
    out: list[str] = []
    err: list[str] = []
    settled = threading.Event()  # the echo came, or stdout ended without it

    def read(stream: TextIO, lines: list[str], watch: bool) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if watch and pasted in line:
                settled.set()
        if watch:
            settled.set()

    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    readers = [
        threading.Thread(target=read, args=(process.stdout, out, True), name="trace-wire stdout"),
        threading.Thread(target=read, args=(process.stderr, err, False), name="trace-wire stderr"),
    ]
    try:
        for reader in readers:
            reader.start()
        with contextlib.suppress(BrokenPipeError):  # a client that already ended says why on stderr
            process.stdin.write(pasted + "\n")
            process.stdin.flush()
        settled.wait(DEADLINE)
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()  # EOF on stdin: chatclient says bye and exits
        process.wait(DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        for reader in readers:
            reader.join(DEADLINE)  # the pipes end with the process
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        process.stdout.close()
        process.stderr.close()
    if not any(pasted in line for line in out):
        last = [line for line in err if not line.startswith("wire:")]
        raise LabError(f"chatclient's pasted line did not come back: {last[-1] if last else 'no error shown'}")
    return out, err


@contextlib.contextmanager
def _where(options: TraceOptions) -> Iterator[tuple[str, list[str], list[str], netns.NamespacePair | None]]:
    """(server address, the server's command prefix, the client's, the namespace pair or None)."""
    if options.rate is None:
        yield "127.0.0.1", [], [], None
        return
    with netns.NamespacePair(rate=options.rate) as pair:
        yield pair.server_address, pair.exec_prefix(pair.server_ns), pair.exec_prefix(pair.client_ns), pair


def run_trace_wire(options: TraceOptions) -> dict[str, Any]:
    flags = ["--no-discovery", "--rate", "0", "--max-per-ip", "0", "--history", str(options.history)]
    with contextlib.ExitStack() as stack:
        address, server_prefix, client_prefix, pair = stack.enter_context(_where(options))
        server = stack.enter_context(ServerProcess(address, 0, flags, prefix=server_prefix))
        port = server.start()
        if pair is None:
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        else:
            with netns.inside(pair.client_ns):
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _filler(filler, (address, port), options)
        started = time.monotonic()
        out, err = _chatclient(client_prefix, (address, port), options)
        took = time.monotonic() - started
    recvs = parse_trace(err)
    return {
        "scenario": "trace-wire",
        "mode": "loopback" if options.rate is None else "netns",
        "rate": options.rate,
        "history": options.history,
        "size": options.size,
        "paste": options.paste,
        "seconds": round(took, 3),
        "recvs": recvs,
        "frames": sum(recv["frames"] for recv in recvs),
        "split_frames": sum(1 for recv in recvs if recv["ends_split_frame"]),
        "chat_lines": len(out),
    }
