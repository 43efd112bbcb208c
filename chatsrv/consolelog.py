"""The teacher's console log: one printable line per record, in the console's language.

`configure_logging` sets it up for the `chatsrv` command (chatsrv.app); `SafeLogFilter` keeps what a peer
chose (a nick, a message type) from acting on the terminal; `ConsoleFormatter` translates what the console
shows while records stay English for files, syslog and tests.
"""

from __future__ import annotations

import logging

from lanchat.i18n import LogText, _
from lanchat.reasons import Said, render


def log_safe(text: str) -> str:
    r"""`text` with every character a console would act on written as an escape: controls (ESC, BEL,
    newline: `\x1b`, `\n`), format characters (bidi overrides, zero-width: `\u202e`) and line separators.

    A peer chooses much of what the server logs (a message type, a nick, a
    room name); raw, an ESC sequence would clear or retitle the teacher's
    terminal, and a newline would forge a log line of its own.
    """
    if text.isprintable():
        return text  # the common case: one C-speed test
    return "".join(
        char
        if char.isprintable()
        else repr(char)[1:-1]
        if ord(char) < 0x100
        else f"\\u{ord(char):04x}"
        if ord(char) < 0x10000
        else f"\\U{ord(char):08x}"
        for char in text
    )


class SafeLogFilter(logging.Filter):
    """Makes every record's message one printable line (`log_safe`); tracebacks are left as they are.

    Installed on the console handler rather than on a logger, because a
    handler sees the records of every logger under it (a logger's own filter
    does not see its children's records), so no call site can forget it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = log_safe(message)
        if safe == message:
            return True
        # Escape the arguments and keep the template, so ConsoleFormatter can still translate it;
        # when that is not enough (an argument that is no string), the whole line is replaced.
        args = record.args
        if isinstance(args, tuple) and isinstance(record.msg, str) and log_safe(record.msg) == record.msg:
            record.args = tuple(log_safe(arg) if isinstance(arg, str) else arg for arg in args)
            escaped = record.getMessage()
            if log_safe(escaped) == escaped:
                return True
            record.args = args
        record.msg, record.args = safe, None
        return True


class ConsoleFormatter(logging.Formatter):
    """The teacher's console log in the console's language: a record's template goes through gettext.

    The template (`record.msg`, "database %s: cannot save (%s)...") is
    translated, then %-formatted with the record's arguments (those that are
    a server sentence, `lanchat.reasons.Said`, or `lanchat.i18n.LogText` are
    translated too), so the
    catalogue holds one entry per log call (Babel extracts the first argument
    of log.info/warning/error/exception/critical: setup.cfg). Only what this
    formatter prints is translated: the record keeps its English template, so
    a handler a deployment adds (a file, syslog) and tests see English.
    Debug lines stay English: they are for whoever reads the code.
    """

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno > logging.DEBUG and isinstance(record.msg, str):
            translated = _(record.msg)
            args = record.args
            if isinstance(args, tuple) and any(isinstance(arg, (Said, LogText)) for arg in args):
                args = tuple(_console_argument(arg) for arg in args)
            if translated != record.msg or args is not record.args:
                record = logging.makeLogRecord(record.__dict__)  # a copy: other handlers keep the English
                record.msg, record.args = translated, args
        return super().format(record)


def _console_argument(value: object) -> object:
    """A log argument as the console shows it: a server sentence (`Said`) or `LogText` in the console's language."""
    if isinstance(value, Said):
        return render(value.key, value.args, _) or value.text
    if isinstance(value, LogText):
        return value.translated()
    return value


def configure_logging(level: str, node: str = "") -> None:
    """The console log: time, level, message in the console's language (`ConsoleFormatter`).

    Every handler of the root logger gets `SafeLogFilter`. `node` ("2" for node 2 of --workers) tags each
    console line, as the nodes share one console and would otherwise print the same line twice, unnamed.
    """
    fields = "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper()), format=fields, datefmt="%H:%M:%S")
    if node:
        tag = _("[node {index}]").format(index=node).replace("%", "%%")
        fields = f"%(asctime)s {tag} %(levelname)s %(message)s"
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, SafeLogFilter) for existing in handler.filters):
            handler.addFilter(SafeLogFilter())
        if type(handler) is logging.StreamHandler:  # the console basicConfig made; not a file, not a test's capture
            handler.setFormatter(ConsoleFormatter(fields, datefmt="%H:%M:%S"))
