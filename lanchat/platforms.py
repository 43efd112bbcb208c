"""Everything that differs between Linux, macOS and Windows, decided once at import.

Owns every platform-specific call of server, client and lab: each sits behind
one small function (or constant) with a portable fallback, chosen here when
this module is imported, so no other module needs a `try` around a missing
facility. It is the only module that may import `resource`, `fcntl` or
`termios`, or name `TCP_INFO`, `SIGHUP`, `SIGBREAK` or `SO_EXCLUSIVEADDRUSE`
(tests/platform/test_no_platform_calls.py checks that).

What each system gets:

=========================  ==========================  ==========================  ==============================
facility                   Linux                       macOS                       Windows
=========================  ==========================  ==========================  ==============================
open-file limit            raised to the hard limit    raised to the hard limit    none to raise: None ("unknown")
                           (`resource`)                (`resource`)                (sockets are not CRT files)
signals that stop the      SIGINT, SIGTERM, SIGHUP     SIGINT, SIGTERM, SIGHUP     SIGINT (Ctrl-C), SIGBREAK
server / make a client                                                             (Ctrl-Break, closed console
leave                                                                              window), SIGTERM
stopping a child politely  SIGTERM                     SIGTERM                     Ctrl-Break to its own group
client loop signals        loop.add_signal_handler     loop.add_signal_handler     signal.signal, handed to the
                                                                                   loop with call_soon_threadsafe
listening socket           SO_REUSEADDR (a restart     SO_REUSEADDR                SO_EXCLUSIVEADDRUSE (Windows'
                           binds at once)                                          SO_REUSEADDR lets another
                                                                                   program steal the port)
one port, several servers  SO_REUSEPORT (--workers)    not available               not available
interface ioctls           `fcntl.ioctl` (netinfo)     None: netinfo's portable    None: netinfo's portable
                                                       fallback                    fallback
peer progress for          TCP_INFO tcpi_bytes_acked   None: the server counts     None: the server counts
backpressure               (the probe chatsrv passes)  what the kernel took        what the kernel took
console text               the stream's encoding; what it cannot show becomes a visible escape such as \\u674e
malloc arenas (chatsrv)    glibc: one (`mallopt`       nothing to set              nothing to set
                           through `ctypes`); musl:
                           nothing to set
=========================  ==========================  ==========================  ==============================

The client's event loop: asyncio's default everywhere. On Windows that is
the Proactor loop (Python 3.8+), which is what the client needs: it supports
`create_datagram_endpoint` (UDP) and `open_connection`, wakes up on Ctrl-C
(the selector loop on Windows does not until its select() times out), and
prompt_toolkit 3 drives the console on it. The client uses no `add_reader`
or `add_writer` (which Proactor lacks): line mode reads stdin in a thread.
`add_signal_handler` exists on no Windows loop; `catch_leave_signals` falls
back for that.

Must not import: anything but the standard library (server, client and lab
share it; tests/test_layering.py ranks it).
"""

from __future__ import annotations

import errno
import importlib
import io
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:  # the server never needs asyncio: only its type is named here
    import asyncio

SYSTEM = sys.platform
IS_WINDOWS = SYSTEM == "win32"
IS_LINUX = SYSTEM.startswith("linux")


def _optional_module(name: str) -> ModuleType | None:
    """The module `name`, or None where this system has none: the one place that tries."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_resource = _optional_module("resource")  # Unix only
_fcntl = _optional_module("fcntl")  # Unix only


# ---------------------------------------------------------------- open files


def _raise_with_resource() -> int | None:
    """Unix: raise the soft open-file limit to the hard one; return the new soft limit."""
    assert _resource is not None
    soft, hard = _resource.getrlimit(_resource.RLIMIT_NOFILE)
    if hard == _resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != hard:
        try:
            _resource.setrlimit(_resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # the kernel refused (macOS caps it at OPEN_MAX): keep what we have
    return int(soft)


def _no_file_limit() -> int | None:
    """Windows: sockets are kernel handles, not C runtime files; there is no limit to raise or to know."""
    return None


raise_open_file_limit: Callable[[], int | None] = _raise_with_resource if _resource is not None else _no_file_limit
raise_open_file_limit.__doc__ = "Raise the open-file limit as far as allowed; the limit, or None where none is known."


# ---------------------------------------------------------------- signals


def _signals(*names: str) -> tuple[int, ...]:
    return tuple(int(getattr(signal, name)) for name in names if hasattr(signal, name))


# A closed Windows console window (CTRL_CLOSE_EVENT) arrives as SIGBREAK, like
# Ctrl-Break, and leaves the process about 5 s to finish.
LEAVE_SIGNALS = _signals("SIGTERM", "SIGHUP", "SIGBREAK")  # the client leaves like /quit (Ctrl-C is a key)
STOP_SIGNALS = _signals("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")  # the server stops politely

def on_stop_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """Main thread: every STOP_SIGNALS number calls `stop()`; returns the function that restores the old handlers."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    for number in STOP_SIGNALS:
        previous[number] = signal.signal(number, handler)

    def restore() -> None:
        for number, old in previous.items():
            signal.signal(number, old)

    return restore


def catch_leave_signals(loop: asyncio.AbstractEventLoop, leave: Callable[[], None]) -> Callable[[], None]:
    """Make LEAVE_SIGNALS call `leave()` inside `loop`; returns the function that undoes it.

    Unix loops take `add_signal_handler`. Where it raises NotImplementedError
    (every Windows loop), a plain `signal.signal` handler hands the call to
    the loop with `call_soon_threadsafe` (the loop's own wake-up makes it run
    at once). Off the main thread no signal can be caught; nothing is set and
    Ctrl-C and Ctrl-D still work.
    """
    in_loop: list[int] = []
    previous: dict[int, Any] = {}

    def hand_over(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(leave)

    for number in LEAVE_SIGNALS:
        try:
            loop.add_signal_handler(number, leave)
            in_loop.append(number)
            continue
        except NotImplementedError:
            pass
        except (RuntimeError, ValueError):
            break  # not the main thread (or a closed loop): no signals here
        try:
            previous[number] = signal.signal(number, hand_over)
        except (ValueError, OSError):
            break

    def undo() -> None:
        for number in in_loop:
            loop.remove_signal_handler(number)
        for number, old in previous.items():
            signal.signal(number, old)

    return undo


# A child chatsrv (the lab's) is asked to stop politely with SIGTERM; Windows
# has no such signal (send_signal(SIGTERM) kills outright), so there the
# child gets its own console process group and a Ctrl-Break, which chatsrv
# takes as SIGBREAK.
_POLITE_STOP: int = int(getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM)) if IS_WINDOWS else int(signal.SIGTERM)
CHILD_PROCESS_OPTIONS: dict[str, Any] = (
    {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)} if IS_WINDOWS else {}
)  # for subprocess.Popen of a child that `ask_to_stop` will stop


def ask_to_stop(process: subprocess.Popen[Any]) -> None:
    """Ask a child started with CHILD_PROCESS_OPTIONS to stop politely (SIGTERM; Ctrl-Break on Windows)."""
    process.send_signal(_POLITE_STOP)


# ---------------------------------------------------------------- listening sockets

# Windows' SO_REUSEADDR lets a second program bind the same port and take the
# traffic; SO_EXCLUSIVEADDRUSE is its safe equivalent (a restarted server
# binds at once there anyway). Elsewhere SO_REUSEADDR is the safe one.
_EXCLUSIVE_ADDRESS_USE: int | None = getattr(socket, "SO_EXCLUSIVEADDRUSE", None) if IS_WINDOWS else None
ALLOW_REUSE_ADDRESS = not IS_WINDOWS  # socketserver's `allow_reuse_address` for the TCP server


# What bind() says when the port is taken: EADDRINUSE (98 on Linux, 48 on
# macOS); Windows sockets say WSAEADDRINUSE (10048).
ADDRESS_IN_USE = frozenset(number for number in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None)) if number)


def claim_address(sock: socket.socket) -> None:
    """Before bind: keep the port ours alone (SO_EXCLUSIVEADDRUSE on Windows; nothing to do elsewhere)."""
    if _EXCLUSIVE_ADDRESS_USE is not None:
        sock.setsockopt(socket.SOL_SOCKET, _EXCLUSIVE_ADDRESS_USE, 1)


# Several processes listening on one port, the kernel spreading new connections
# over them (chatsrv --workers): Linux's SO_REUSEPORT. macOS and the BSDs have an
# option of that name that does not spread connections; Windows has none.
_REUSE_PORT: int | None = getattr(socket, "SO_REUSEPORT", None) if IS_LINUX else None


def share_port(sock: socket.socket) -> bool:
    """Before bind: let other processes listen on the same port (SO_REUSEPORT); False where that is not available."""
    if _REUSE_PORT is None:
        return False
    sock.setsockopt(socket.SOL_SOCKET, _REUSE_PORT, 1)
    return True


# ---------------------------------------------------------------- interfaces

# `fcntl.ioctl(fd, request, buffer)`, for netinfo's Linux interface queries;
# None where netinfo must use its portable fallback. The SIOCGIF* numbers it
# uses are Linux's, so other Unixes get None too.
LINUX_IOCTL: Callable[[int, int, bytes], bytes] | None = _fcntl.ioctl if IS_LINUX and _fcntl is not None else None


# ---------------------------------------------------------------- peer progress

# Linux's TCP_INFO; FreeBSD's has another layout and macOS names it otherwise.
TCP_INFO_OPTION: int | None = getattr(socket, "TCP_INFO", None) if IS_LINUX else None


def read_tcp_info(sock: socket.socket, size: int) -> bytes | None:
    """The first `size` bytes of Linux's `struct tcp_info` for `sock`, or None.

    None where this system has no TCP_INFO (macOS, Windows), the kernel
    gives fewer bytes (an old kernel), or the socket is closed or not TCP.
    Callers read the fields at linux/tcp.h's offsets, which only ever grow at
    the end; the server's backpressure then falls back to counting what the
    kernel took from us (coarser: a full socket buffer hides a peer that
    stopped reading for as long as the buffer keeps taking bytes).
    """
    if TCP_INFO_OPTION is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO_OPTION, size)
    except (OSError, ValueError):
        return None
    return info if len(info) >= size else None


# ---------------------------------------------------------------- malloc arenas

# glibc's malloc gives threads that allocate at the same time arenas of their
# own (up to 8 per core), and each arena keeps what was freed in it for its
# own later use. chatsrv runs a thread per connection: with thousands of
# members the arenas kept memory that no other thread could reuse (measured at
# 5,000 joined members: 49-52 KB per connection became 39 with batch_joins,
# 96-104 became 42 for version 1 clients). CPython allocates with its GIL held, so one arena
# costs no lock contention worth measuring. glibc's malloc.h: M_ARENA_MAX -8.
GLIBC_M_ARENA_MAX = -8
SERVER_MALLOC_ARENAS = 1  # chatsrv's arenas: all threads share the main one


def _find_glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's `mallopt(param, value)`, or None (no ctypes, another C library, Windows, macOS)."""
    if not IS_LINUX:
        return None
    ctypes = _optional_module("ctypes")
    if ctypes is None:
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this Python already uses
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):
        return None  # musl and others: M_ARENA_MAX means nothing there (their mallopt ignores it or differs)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return cast(Callable[[int, int], int], mallopt)


# Looked up only when the server asks (the client never loads ctypes for it); tests replace it.
_find_mallopt: Callable[[], Callable[[int, int], int] | None] = _find_glibc_mallopt
_arenas_limited: bool | None = None  # what limit_malloc_arenas answered in this process; None: not called yet


def limit_malloc_arenas(arenas: int = SERVER_MALLOC_ARENAS) -> bool:
    """glibc: at most `arenas` malloc arenas from now on; False where there is nothing to set (or glibc refused).

    Only the first call in a process does anything (later ones repeat its
    answer). Call it before the threads start: arenas that already exist stay.
    """
    global _arenas_limited
    if _arenas_limited is None:
        mallopt = _find_mallopt()
        _arenas_limited = mallopt is not None and bool(mallopt(GLIBC_M_ARENA_MAX, arenas))
    return _arenas_limited


# ---------------------------------------------------------------- console text


class EscapingWriter:
    """Wraps a text stream that cannot be reconfigured: characters its encoding lacks become escapes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.encoding: str = getattr(stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        safe = text.encode(self.encoding, "backslashreplace").decode(self.encoding, "replace")
        self.stream.write(safe)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def console_safe(stream: TextIO, encoding: str | None = None) -> TextIO:
    """`stream`, made to write what its encoding cannot show as visible escapes (`\\u674e`), never raising.

    A real file stream is reconfigured in place (and switched to `encoding`
    if given); anything else is wrapped. Windows' own console is UTF-8 since
    Python 3.6, but a redirected stream, PYTHONIOENCODING or a legacy code
    page (cp936 has no emoji, cp437 no Chinese) is not.
    """
    if isinstance(stream, io.TextIOWrapper):
        if encoding is None:
            stream.reconfigure(errors="backslashreplace")
        else:
            stream.reconfigure(encoding=encoding, errors="backslashreplace")
        return stream
    if isinstance(stream, io.StringIO):
        return stream  # holds any character
    return cast(TextIO, EscapingWriter(stream))  # the part of TextIO that print() and the clients use


def console_safe_stdio() -> None:
    """stdout and stderr write escapes instead of raising; stdin lines it cannot decode get U+FFFD, not an error."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None:
            setattr(sys, name, console_safe(stream))
    if isinstance(sys.stdin, io.TextIOWrapper):
        try:
            sys.stdin.reconfigure(errors="replace")
        except io.UnsupportedOperation:
            pass  # already read from (a question was asked): it keeps its strict decoding


def document_output(stream: TextIO) -> TextIO:
    """For a document (an export): UTF-8 into a file or pipe; on a console its own encoding, with escapes."""
    return console_safe(stream, encoding=None if stream.isatty() else "utf-8")


# ---------------------------------------------------------------- language


def ui_language() -> str | None:
    """Windows: the user's UI language as a locale name (`zh_CN`); elsewhere None (the locale variables decide).

    Windows programs get no LANG; the language of the desktop is what a
    Windows user has chosen.
    """
    if not IS_WINDOWS:
        return None
    import ctypes  # only here: `windll` exists on Windows alone
    import locale

    try:
        language_id = int(ctypes.windll.kernel32.GetUserDefaultUILanguage())  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None
    return locale.windows_locale.get(language_id)
