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


# --- argument types: each names itself for argparse's "invalid X value" -------


def count(text: str) -> int:
    """A whole number, 0 or more (0 often turns a limit off)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {text}")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


def positive_number(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a percentage is 0 to 100, not {text}")
    return value


for _checker, _name in (
    (count, "a whole number"),
    (positive_int, "a whole number"),
    (port, "a port"),
    (seconds, "seconds"),
    (positive_number, "a number"),
    (positive_seconds, "seconds"),
    (percent, "a percentage"),
):
    _checker.__name__ = _name
