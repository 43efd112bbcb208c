"""Command-line conventions shared by `chatsrv`, `chatsrv export` and `chatclient`.

Standard library and lanchat.i18n only, so the client may use it too: a bad
flag is reported in one line with exit code 2, in the chosen language, and
`--help` shows a default only where there is one worth showing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn, TypeVar

from lanchat.i18n import N_, Lazy, _, wrap

Number = TypeVar("Number", int, float)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" unless X is empty (None, False, an empty list) or already said; a help
    text that ends in parentheses gets it inside them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        default = action.default
        # Identity, not ==: 0 == False would hide a real default of 0.
        said = "default" in help_text or _("default") in help_text  # the help names its default itself
        if default is None or default is False or default == [] or default == "" or said:
            return help_text
        if super()._get_help_string(action) == help_text:
            return help_text  # argparse would not show this default either (--help's own, a positional)
        if isinstance(default, (list, tuple)):  # "tcp, udp", not "('tcp', 'udp')"
            shown = ", ".join(str(item) for item in default).replace("%", "%%")
        else:
            shown = "%(default)s"
        # "(0: off; default: 300)", not "(0: off) (default: 300)"; a Chinese help ends in a full-width "）".
        if help_text.endswith((")", "）")):
            return _("{help}; default: {default})").format(help=help_text[:-1], default=shown)
        return _("{help} (default: {default})").format(help=help_text, default=shown)

    # argparse wraps with textwrap, which counts characters and breaks only at spaces: a Chinese
    # line came out up to twice the terminal's width. These wrap by display width (lanchat.i18n.wrap).
    def _split_lines(self, text: str, width: int) -> list[str]:
        return wrap(" ".join(text.split()), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(indent + line for line in wrap(" ".join(text.split()), width - len(indent)))


class RawDescriptionHelpFormatter(HelpFormatter):
    """HelpFormatter that prints the description and epilog as written (line breaks kept), like argparse's."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit 2), not a usage dump."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, _("{prog}: {message} (see {prog} --help)").format(prog=self.prog, message=message) + "\n")


# --- argument types: each names itself for argparse's "invalid X value" -------


def _checked(
    name: str, convert: Callable[[str], Number], accept: Callable[[Number], bool], rule: str
) -> Callable[[str], Number]:
    """An argparse type: `convert`, then refuse values `accept` rejects, saying `rule`."""

    def check(text: str) -> Number:
        value = convert(text)
        if not accept(value):  # written as "not accept" so NaN is refused too
            raise argparse.ArgumentTypeError(_("{rule}, not {text}").format(rule=_(rule), text=text))
        return value

    check.__name__ = Lazy(name)  # translated when argparse prints it
    return check


_INF = float("inf")
count = _checked(N_("whole number"), int, lambda v: v >= 0, N_("must be 0 or more"))  # 0 often turns a limit off
positive_int = _checked(N_("whole number"), int, lambda v: v >= 1, N_("must be 1 or more"))
port = _checked(N_("port"), int, lambda v: 0 <= v <= 65535, N_("a port is 0 to 65535"))
seconds = _checked(N_("seconds"), float, lambda v: v >= 0, N_("must be 0 or more seconds"))
positive_number = _checked(N_("number"), float, lambda v: 0 < v < _INF, N_("must be more than 0"))
positive_seconds = _checked(N_("seconds"), float, lambda v: 0 < v < _INF, N_("must be more than 0 seconds"))
percent = _checked(N_("percentage"), float, lambda v: 0 <= v <= 100, N_("a percentage is 0 to 100"))
rate = _checked(N_("rate"), float, lambda v: 0 <= v < _INF, N_("must be 0 or more messages per second"))
