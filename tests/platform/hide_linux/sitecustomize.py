"""Makes this Python look like Windows or macOS to lanchat: Linux's extras are hidden before any import.

Put this directory first on PYTHONPATH (tests/platform/conftest.py does) and
the interpreter imports this file at start-up, before lanchat:

- `import resource`, `import fcntl` and `import termios` fail (Windows has
  none of them; without fcntl no SIOCGIF* interface ioctl can run);
- `socket.TCP_INFO` is gone (macOS and Windows have no such option), and so is `socket.SO_REUSEPORT`
  (Windows has none; macOS's does not spread connections: `chatsrv --workers` is not for it);
- `signal.SIGHUP` is gone (Windows);
- `loop.add_signal_handler` raises NotImplementedError (every Windows loop).

With LANCHAT_TEST_BREAK_JOIN_HINTS=1, chatsrv's lookup of the addresses
classmates join at raises ImportError once the listeners run, as a broken
interface lookup did in a real start-up.
Test support only: nothing in lanchat imports this.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import os
import signal
import socket
import sys
import types
from typing import Any, NoReturn

HIDDEN = frozenset({"resource", "fcntl", "termios"})


class _HideLinuxModules(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden: tests/platform/hide_linux)", name=name)


for _name in HIDDEN:
    sys.modules.pop(_name, None)
sys.meta_path.insert(0, _HideLinuxModules())

if hasattr(socket, "TCP_INFO"):
    del socket.TCP_INFO
if hasattr(socket, "SO_REUSEPORT"):
    del socket.SO_REUSEPORT  # Windows has none; macOS has one that does not spread connections
if hasattr(signal, "SIGHUP"):
    del signal.SIGHUP


def _no_signal_handlers(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise NotImplementedError  # what asyncio's Windows loops do


asyncio.SelectorEventLoop.add_signal_handler = _no_signal_handlers  # type: ignore[method-assign]
asyncio.SelectorEventLoop.remove_signal_handler = _no_signal_handlers  # type: ignore[method-assign]


def _broken_lookup(*args: Any) -> NoReturn:
    raise ImportError("No module named 'fcntl' (the interface lookup is broken on purpose)")


class _BreakJoinHints(importlib.abc.MetaPathFinder):
    """Once chatsrv.app is loaded, its join-address lookup raises (as a broken interface lookup did)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "chatsrv.app":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        assert spec is not None and spec.loader is not None
        load = spec.loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            load(module)
            module.join_hints = _broken_lookup  # type: ignore[attr-defined]

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if os.environ.get("LANCHAT_TEST_BREAK_JOIN_HINTS") == "1":
    sys.meta_path.insert(0, _BreakJoinHints())

os.environ["LANCHAT_LINUX_HIDDEN"] = "1"  # a sign for tests that this file really ran
