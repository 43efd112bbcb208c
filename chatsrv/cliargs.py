"""Command-line conventions shared by `chatsrv`, `chatsrv export` and `chatclient`.

A leaf module (standard library only), so the client may use it too: a bad
flag is reported in one line with exit code 2, and `--help` shows a default
only where there is one worth showing.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" unless X is empty (None, False, an empty list) or already said."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        default = action.default
        # Identity, not ==: 0 == False would hide a real default of 0.
        if default is None or default is False or default == [] or default == "" or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit 2), not a usage dump."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")
