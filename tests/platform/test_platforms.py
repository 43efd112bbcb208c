"""Each platform function of lanchat.platforms and lanchat.netinfo, on its own and through its fallback."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from chatsrv.app import build_server
from chatsrv.options import build_parser
from chatsrv.tcp import ChatTCPServer
from lanchat import netinfo, platforms
from lanchat_lab import cli as lab_cli
from tests.platform.conftest import ROOT, Output


@pytest.fixture
def restored_signals() -> Iterator[None]:
    """Whatever a test does to the leave/stop signals' handlers is undone."""
    numbers = set(platforms.LEAVE_SIGNALS) | set(platforms.STOP_SIGNALS)
    before = {number: signal.getsignal(number) for number in numbers}
    yield
    for number, handler in before.items():
        signal.signal(number, handler)


# ---------------------------------------------------------------- open files


def test_without_resource_the_file_limit_is_unknown() -> None:
    """Windows' fallback: no limit to raise, and None says it is unknown."""
    assert platforms._no_file_limit() is None


@pytest.mark.skipif(sys.platform == "win32", reason="resource is Unix only")
def test_with_resource_the_soft_limit_is_raised_to_the_hard_one() -> None:
    """Unix: the answer is at least the soft limit we started with, and is the limit in force afterwards."""
    import resource  # only to check what the platform layer did

    soft_before, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = platforms._raise_with_resource()
    assert limit is not None and limit >= soft_before
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == limit


def test_an_unknown_file_limit_caps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """chatsrv where the limit is unknown: --max-clients as given, and no connection cap below it."""
    monkeypatch.setattr(platforms, "raise_open_file_limit", platforms._no_file_limit)
    args = build_parser().parse_args(["--host", "127.0.0.1", "--port", "0", "--db", ":memory:", "--max-clients", "0"])
    server = build_server(args)
    try:
        assert server.tcp.max_connections == 0
        assert server.service.max_clients == 0
    finally:
        server.tcp.server_close()
        assert server.udp is not None
        server.udp.server_close()
        server.service.store.close()


# ---------------------------------------------------------------- malloc arenas


def build_and_close() -> None:
    """Build a chatsrv server on port 0 and close it again without serving."""
    args = build_parser().parse_args(["--host", "127.0.0.1", "--port", "0", "--db", ":memory:"])
    server = build_server(args)
    server.tcp.server_close()
    assert server.udp is not None
    server.udp.server_close()
    server.service.store.close()


def test_building_the_server_limits_malloc_arenas_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """chatsrv asks glibc for one arena (M_ARENA_MAX) when the server is built, once however often it is built."""
    calls: list[tuple[int, int]] = []

    def mallopt(param: int, value: int) -> int:
        calls.append((param, value))
        return 1

    monkeypatch.setattr(platforms, "_find_mallopt", lambda: mallopt)
    monkeypatch.setattr(platforms, "_arenas_limited", None)
    build_and_close()
    build_and_close()
    assert calls == [(platforms.GLIBC_M_ARENA_MAX, platforms.SERVER_MALLOC_ARENAS)] == [(-8, 1)]
    assert platforms.limit_malloc_arenas() is True


def test_without_ctypes_or_glibc_nothing_is_set_and_the_server_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ctypes (or not Linux, or not glibc): no mallopt is found, limiting says False, chatsrv builds all the same."""
    real = platforms._optional_module
    monkeypatch.setattr(platforms, "_optional_module", lambda name: None if name == "ctypes" else real(name))
    assert platforms._find_glibc_mallopt() is None
    monkeypatch.setattr(platforms, "_arenas_limited", None)
    assert platforms.limit_malloc_arenas() is False
    build_and_close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_on_glibc_the_real_mallopt_is_found() -> None:
    """On a glibc Linux the platform layer finds mallopt (a musl system legitimately has none)."""
    import platform  # only to tell glibc from musl here

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert platforms._find_glibc_mallopt() is not None


def test_the_client_does_not_load_ctypes_for_the_server_s_arenas() -> None:
    """Importing the platform layer (as the client does) looks nothing up: ctypes is loaded only when chatsrv asks."""
    code = "import sys, lanchat.platforms, chatclient.cli; print('ctypes' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------- signals


def test_signal_sets_hold_what_this_system_has() -> None:
    """Stop signals: Ctrl-C and SIGTERM everywhere, SIGHUP where it exists, SIGBREAK on Windows; leave signals without
    Ctrl-C."""
    assert platforms.STOP_SIGNALS[:2] == (signal.SIGINT, signal.SIGTERM)
    assert (getattr(signal, "SIGHUP", None) in platforms.STOP_SIGNALS) == hasattr(signal, "SIGHUP")
    assert (getattr(signal, "SIGBREAK", None) in platforms.LEAVE_SIGNALS) == hasattr(signal, "SIGBREAK")
    assert signal.SIGINT not in platforms.LEAVE_SIGNALS
    assert platforms._signals("SIGTERM", "NO_SUCH_SIGNAL") == (signal.SIGTERM,)


def test_stop_signals_call_stop_and_restore_puts_the_old_handlers_back(restored_signals: None) -> None:
    """on_stop_signals: SIGTERM calls stop(); restore brings back the handler that was there."""
    before = {number: signal.getsignal(number) for number in platforms.STOP_SIGNALS}
    stopped = threading.Event()
    restore = platforms.on_stop_signals(stopped.set)
    assert all(signal.getsignal(number) is not before[number] for number in platforms.STOP_SIGNALS)
    signal.raise_signal(signal.SIGTERM)
    assert stopped.is_set()
    restore()
    assert {number: signal.getsignal(number) for number in platforms.STOP_SIGNALS} == before


class WindowsLikeLoop(asyncio.SelectorEventLoop):
    """A loop without add_signal_handler, like every Windows loop."""

    def add_signal_handler(self, sig: int, callback: Any, *args: Any) -> None:
        raise NotImplementedError

    def remove_signal_handler(self, sig: int) -> bool:
        raise NotImplementedError


def test_leave_signals_fall_back_to_signal_signal_and_reach_the_loop(restored_signals: None) -> None:
    """Without add_signal_handler, SIGTERM still makes the loop call leave(), in the loop; undo restores."""
    previous = signal.getsignal(signal.SIGTERM)
    loop = WindowsLikeLoop()
    left: list[bool] = []

    async def main() -> None:
        undo = platforms.catch_leave_signals(loop, lambda: left.append(asyncio.get_running_loop() is loop))
        assert signal.getsignal(signal.SIGTERM) is not previous
        signal.raise_signal(signal.SIGTERM)
        for _ in range(100):  # bounded: the hand-over is one loop iteration away
            if left:
                break
            await asyncio.sleep(0.01)
        undo()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert left == [True]
    assert signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.skipif(sys.platform == "win32", reason="add_signal_handler is Unix only")
def test_leave_signals_use_add_signal_handler_where_it_works(restored_signals: None) -> None:
    """A Unix loop takes the signals itself; undo removes them again."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        undo = platforms.catch_leave_signals(loop, lambda: None)
        assert set(loop._signal_handlers) == set(platforms.LEAVE_SIGNALS)  # type: ignore[attr-defined]
        undo()
        assert not loop._signal_handlers  # type: ignore[attr-defined]

    asyncio.run(main())


def test_leave_signals_off_the_main_thread_set_nothing(restored_signals: None) -> None:
    """In another thread no signal can be caught: no error, nothing changed, undo is harmless."""
    before = signal.getsignal(signal.SIGTERM)
    errors: list[BaseException] = []

    def in_thread() -> None:
        loop = WindowsLikeLoop()
        try:
            platforms.catch_leave_signals(loop, lambda: None)()
        except BaseException as error:  # noqa: BLE001 - reported to the test below
            errors.append(error)
        finally:
            loop.close()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(5)
    assert errors == [] and signal.getsignal(signal.SIGTERM) is before


# ---------------------------------------------------------------- listening sockets


class RecordingSocket:
    def __init__(self) -> None:
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))


def test_claim_address_sets_exclusive_use_where_the_system_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows: SO_EXCLUSIVEADDRUSE is set before bind; elsewhere nothing is set."""
    sock = RecordingSocket()
    monkeypatch.setattr(platforms, "_EXCLUSIVE_ADDRESS_USE", None)
    platforms.claim_address(sock)  # type: ignore[arg-type]
    assert sock.options == []
    monkeypatch.setattr(platforms, "_EXCLUSIVE_ADDRESS_USE", -5)  # Windows' value is -5 (~SO_REUSEADDR)
    platforms.claim_address(sock)  # type: ignore[arg-type]
    assert sock.options == [(socket.SOL_SOCKET, -5, 1)]


def test_servers_reuse_the_address_only_where_that_is_safe() -> None:
    """The TCP server asks for SO_REUSEADDR exactly where the platform layer says it is safe (not Windows)."""
    assert ChatTCPServer.allow_reuse_address is platforms.ALLOW_REUSE_ADDRESS
    assert platforms.ALLOW_REUSE_ADDRESS is (sys.platform != "win32")
    assert platforms.ADDRESS_IN_USE >= {
        98 if sys.platform.startswith("linux") else 48 if sys.platform == "darwin" else 10048
    }


# ---------------------------------------------------------------- peer progress


def test_tcp_info_is_read_only_where_the_system_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TCP_INFO (macOS, Windows) nothing is read: None, and callers fall back; with it, the bytes."""
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_connection(listener.getsockname()) as sock:
        if platforms.TCP_INFO_OPTION is not None:
            info = platforms.read_tcp_info(sock, 104)
            assert info is not None and len(info) >= 104
        assert platforms.read_tcp_info(sock, 1 << 20) is None  # the kernel's struct is shorter than asked
        monkeypatch.setattr(platforms, "TCP_INFO_OPTION", None)
        assert platforms.read_tcp_info(sock, 104) is None
    closed = socket.socket()
    closed.close()
    assert platforms.read_tcp_info(closed, 104) is None


# ---------------------------------------------------------------- console text


def console(encoding: str) -> tuple[io.BytesIO, io.TextIOWrapper]:
    raw = io.BytesIO()
    return raw, io.TextIOWrapper(raw, encoding=encoding, write_through=True)


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("ascii", b"\\u674e\\u96f7 \\u0930 \\u0e2a \\U0001f600\n"),
        ("gbk", "李雷".encode("gbk") + b" \\u0930 \\u0e2a \\U0001f600\n"),
        ("utf-8", "李雷 र ส 😀\n".encode()),
    ],
)
def test_console_safe_escapes_what_the_encoding_cannot_show(encoding: str, expected: bytes) -> None:
    """A console in ASCII or GBK gets \\u escapes for what it lacks, never a UnicodeEncodeError."""
    raw, stream = console(encoding)
    with pytest.raises(UnicodeEncodeError) if encoding != "utf-8" else _nothing():
        print("李雷 र ส 😀", file=stream)  # as the console was
    raw.seek(0)
    raw.truncate()
    safe = platforms.console_safe(stream)
    assert safe is stream  # reconfigured in place: print() and logging keep using it
    print("李雷 र ส 😀", file=safe)
    assert raw.getvalue() == expected


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_stream_that_cannot_be_reconfigured_is_wrapped() -> None:
    """Other text streams are wrapped by EscapingWriter, which writes the same escapes; a StringIO holds anything."""

    class AsciiOnly:
        encoding = "ascii"

        def __init__(self) -> None:
            self.written: list[str] = []

        def write(self, text: str) -> int:
            text.encode("ascii")  # raises like a narrow console
            self.written.append(text)
            return len(text)

    inner = AsciiOnly()
    wrapped = platforms.console_safe(inner)  # type: ignore[arg-type]
    assert isinstance(wrapped, platforms.EscapingWriter)
    print("李 ok", file=wrapped)
    assert "".join(inner.written) == "\\u674e ok\n"
    plain = io.StringIO()
    assert platforms.console_safe(plain) is plain


def test_console_safe_stdio_covers_stdout_stderr_and_undecodable_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """After console_safe_stdio, printing Chinese to an ASCII stdout or stderr works, and bad stdin bytes read as
    U+FFFD."""
    out_raw, out = console("ascii")
    err_raw, err = console("ascii")
    stdin = io.TextIOWrapper(io.BytesIO(b"caf\xe9\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdin", stdin)
    platforms.console_safe_stdio()
    print("李")
    print("雷", file=sys.stderr)
    assert out_raw.getvalue() == b"\\u674e\n" and err_raw.getvalue() == b"\\u96f7\n"
    assert sys.stdin.readline() == "caf\ufffd\n"


def test_console_safe_stdio_after_stdin_was_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stdin already read from (the client asked which server) is left as it is; stdout is still made safe."""
    out_raw, out = console("ascii")
    stdin = io.TextIOWrapper(io.BytesIO(b"1\nmore\n"), encoding="utf-8")
    assert stdin.readline() == "1\n"
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stdin", stdin)
    platforms.console_safe_stdio()
    print("李")
    assert out_raw.getvalue() == b"\\u674e\n" and sys.stdin.readline() == "more\n"


def test_document_output_is_utf8_into_files_and_escaped_on_consoles() -> None:
    """An export into a file or pipe is UTF-8 (what the HTML declares); on a console it keeps the console's encoding."""
    raw, stream = console("cp1252")
    platforms.document_output(stream).write("李雷\n")
    assert raw.getvalue() == "李雷\n".encode()

    class Tty(io.TextIOWrapper):
        def isatty(self) -> bool:
            return True

    raw = io.BytesIO()
    tty = Tty(raw, encoding="cp1252", write_through=True)
    platforms.document_output(tty).write("李é\n")
    assert raw.getvalue() == b"\\u674e\xe9\n"


# ---------------------------------------------------------------- interfaces


def test_portable_interfaces_give_every_outside_address_the_limited_broadcast() -> None:
    """Fallback: loopback first, the routed address, then the host name's; duplicates once; loopback gets no
    broadcast."""
    found = netinfo.portable_interfaces(
        routed=lambda: "192.168.1.5", named=lambda: ["127.0.1.1", "192.168.1.5", "10.0.0.7"]
    )
    assert found == [
        netinfo.Interface("loopback", "127.0.0.1", None),
        netinfo.Interface("default route", "192.168.1.5", "255.255.255.255"),
        netinfo.Interface("host name", "127.0.1.1", None),
        netinfo.Interface("host name", "10.0.0.7", "255.255.255.255"),
    ]


def test_portable_interfaces_without_a_route_or_a_resolvable_name() -> None:
    """A machine without a route and whose name resolves to nothing still has loopback (and nothing made up)."""
    assert netinfo.portable_interfaces(routed=lambda: None, named=list) == [
        netinfo.Interface("loopback", "127.0.0.1", None)
    ]


def test_routed_address_reads_the_source_address_a_route_picks() -> None:
    """The connect-and-read-the-name trick itself: towards loopback the source is loopback."""
    assert netinfo.routed_address(("127.0.0.1", 9)) == "127.0.0.1"


def test_the_linux_reader_needs_the_ioctl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without fcntl.ioctl (Windows, macOS) the Linux reader returns nothing instead of failing."""
    monkeypatch.setattr(platforms, "LINUX_IOCTL", None)
    assert netinfo.linux_interfaces() == []


# ---------------------------------------------------------------- chatlab


def lab_args(*argv: str) -> argparse.Namespace:
    return lab_cli.build_parser().parse_args(list(argv))


def test_lab_netns_scenarios_say_they_need_linux_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On other systems --netns-* is refused in one line with exit 2; scenarios without it may run."""
    monkeypatch.setattr(platforms, "IS_LINUX", False)
    monkeypatch.setattr(platforms, "SYSTEM", "win32")
    assert lab_cli.main(["compare", "--netns-loss", "5"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--netns-loss need Linux" in error[0] and "win32" in error[0]
    assert lab_cli.linux_only(lab_args("compare", "--netns-loss", "5", "--netns-rate", "1mbit")) is not None
    assert lab_cli.linux_only(lab_args("compare", "--udp-loss", "5")) is None
    assert lab_cli.linux_only(lab_args("sticky")) is None
    monkeypatch.setattr(platforms, "IS_LINUX", True)
    assert lab_cli.linux_only(lab_args("compare", "--netns-loss", "5")) is None


# ---------------------------------------------------------------- child processes


def test_ask_to_stop_lets_a_child_chatsrv_say_goodbye() -> None:
    """A chatsrv started with CHILD_PROCESS_OPTIONS and asked to stop exits 0 through its polite shutdown."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chatsrv", "--host", "127.0.0.1", "--port", "0", "--db", ":memory:"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **platforms.CHILD_PROCESS_OPTIONS,
    )
    assert process.stdout is not None and process.stderr is not None
    out, err = Output(process.stdout, "utf-8"), Output(process.stderr, "utf-8")
    try:
        out.until(r"Ctrl-C stops the server")
        platforms.ask_to_stop(process)
        assert process.wait(5) == 0
        assert any("shutdown:" in line for line in err.rest())
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        process.stdout.close()
        process.stderr.close()
        out.thread.join(5)
        err.thread.join(5)
