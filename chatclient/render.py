"""Display lines -> text: timestamps, nick colours, and terminal safety.

Pure. `plain` is for line mode, `fragments` and `status_bar` build
prompt_toolkit formatted text for the terminal UI as plain (style, text)
pairs, so no prompt_toolkit import is needed here. Every string that came from the network goes through `sanitize`
before it reaches a terminal: control characters (Unicode Cc), format
characters (Unicode Cf: zero-width spaces and joiners, the byte order mark,
bidi controls, tag characters) and line/paragraph separators are shown as
visible escapes, so a classmate cannot drive your terminal, ring bells, move
the cursor, fake another user's line (docs/testing.md #7), hide text or
dodge a mention highlight with invisible characters (only a zero-width
joiner between two emoji stays, so 👨‍👩‍👧 still shows as one). A long run of
zero-width characters (format or combining) is shown as one short marker
such as `⟨200 × U+200B⟩`.

A message the server marked as an operator's shows the nick as `@teacher`
(docs/protocol.md §9.4): `@` is in no nick, so no look-alike can show it.

Cost is linear in a message's length whatever its characters: sanitizing
is one pass, and wrapping keeps a running width per row instead of
measuring the row again for every character (a 2,000-character message of
zero-width characters once took 20 times as long as 2,000 letters).
Imports only `chatclient.state`, `lanchat.display` (the text-safety rule every display shares) and
`lanchat.i18n` (the bar's words).
"""

from __future__ import annotations

import time
import unicodedata
import zlib

from chatclient.lines import Line
from chatclient.state import ClientState
from lanchat.display import safe_text
from lanchat.i18n import CLOSING_PUNCTUATION, _, ngettext

CONTINUATION = "  | "  # prefix of a message's second and later lines


def sanitize(text: str, keep_newlines: bool = False) -> str:
    """Make untrusted text safe to print: the shared rule of `lanchat.display`, with a tab as four spaces.

    With `keep_newlines`, a newline stays a newline (callers indent what
    follows it so it cannot pass for a new line of the chat). More than
    lanchat.display.COMPACT_RUN zero-width characters in a row become one marker. One pass.
    """
    return safe_text(text, keep="\n" if keep_newlines else "", tab="    ", compact=True, mixed_run=_mixed_run)


def _mixed_run(count: int) -> str:
    """The marker of a long run of different zero-width characters, in the client's language."""
    return _("⟨{count} zero-width characters⟩").format(count=count)


def clock(ts: float | None) -> str:
    """`HH:MM` local time of a timestamp (now when absent; `--:--` when the system cannot show it)."""
    try:
        return time.strftime("%H:%M", time.localtime(ts if isinstance(ts, (int, float)) else None))
    except (OverflowError, OSError, ValueError):  # a server's ts past what time_t holds
        return "--:--"


NICK_COLOURS = (
    "ansired", "ansigreen", "ansiyellow", "ansiblue", "ansimagenta", "ansicyan",
    "ansibrightred", "ansibrightgreen", "ansibrightyellow", "ansibrightblue", "ansibrightmagenta", "ansibrightcyan",
)


def nick_colour(nick: str) -> str:
    """A stable colour per nick (same on every machine, every run)."""
    return NICK_COLOURS[zlib.crc32(nick.casefold().encode("utf-8")) % len(NICK_COLOURS)]


def sender(line: Line) -> str:
    """A message's nick as shown, sanitized: `@teacher` when the server marked it an operator's."""
    nick = sanitize(line.nick)
    return f"@{nick}" if line.operator and line.kind in ("message", "own", "action") else nick


def body(line: Line) -> str:
    """The text after the timestamp, sanitized, continuation lines indented."""
    nick = sender(line)
    text = sanitize(line.text, keep_newlines=True).replace("\n", "\n" + CONTINUATION)
    kind = line.kind
    if kind in ("message", "own"):
        return f"<{nick}> {text}"
    if kind == "action":
        return f"* {nick} {text}"
    if kind == "whisper_in":
        return f"*{nick}* {text}"
    if kind == "whisper_out":
        # Not "->": in line mode that marks joins and leaves.
        return _("*to {nick}* {text}").format(nick=sanitize(line.target), text=text)
    if kind == "presence":
        return f"-> {text}"
    if kind == "notice":
        return f"-!- {text}"
    if kind == "error":
        return f"! {text}"
    return f"-- {text}"


def plain(line: Line) -> str:
    """One printable line: `[12:01] <alice> hi`."""
    return f"[{clock(line.ts)}] {body(line)}"


# --- styled fragments for the terminal UI ----------------------------------
#
# prompt_toolkit prints "formatted text": a list of (style, text) pairs, where
# a style is a plain string such as "fg:ansired bold". Building them needs no
# prompt_toolkit import, so this stays pure and testable.

Fragments = list[tuple[str, str]]

NICK_COLUMN = 10  # cells for the right-aligned "who" column
SEPARATOR = " │ "
_TIME_CELLS = 6  # "HH:MM "


def char_width(char: str) -> int:
    """Terminal cells one character takes: 2 for wide CJK, 0 for combining marks."""
    if unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def cell_width(text: str) -> int:
    """Terminal cells `text` takes (not `len`: 王 is one character but two cells)."""
    return sum(char_width(char) for char in text)


def wrap(text: str, cells: int, later_cells: int | None = None) -> list[str]:
    """Cut `text` (no newlines) into rows of at most `cells` terminal cells.

    Rows after the first may have another limit (`later_cells`, for a hanging
    indent). Breaks at a space when there is one, else anywhere (CJK has no
    spaces); the space at a break is dropped. We wrap ourselves rather than
    let the terminal do it: a terminal's soft wrap starts the next row at
    column 0, where a long message could forge a whole new chat line
    ("12:03  teacher │ ..."); our rows are indented.
    """
    if cells < 1:
        return [text]
    later = max(1, later_cells or cells)
    rows: list[str] = []
    # The current row, the cells of each of its characters, and their sum, kept
    # up to date as characters come and go: never measured again from scratch,
    # so a long run of zero-width characters costs linear time.
    row: list[str] = []
    widths: list[int] = []
    used = 0
    limit = cells
    for char in text:
        width = char_width(char)
        kept = True
        while row and used + width > limit:
            if char == " ":
                rows.append("".join(row))  # break at this space and drop it
                row, widths, used, limit = [], [], 0, later
                kept = False  # nothing of this char is kept
                break
            # Each break looks back over the row once, and a character is carried
            # to a new row at most once, so the breaks cost linear time too.
            space = "".join(row).rfind(" ")
            if space > 0 and width < 2:  # word wrap; CJK may break between any two characters
                rows.append("".join(row[:space]))
                row, widths = row[space + 1 :], widths[space + 1 :]
            elif char in CLOSING_PUNCTUATION and width == 2 and len(row) > 1 and widths[-1] == 2:
                # A Chinese row never starts with 。，）: the character before it goes down with it.
                rows.append("".join(row[:-1]))
                row, widths = row[-1:], widths[-1:]
            else:
                rows.append("".join(row))
                row, widths = [], []
            used = sum(widths)
            limit = later
            while used > limit:  # a carried word longer than a later row
                cut, fitting = 0, 0
                while cut < len(row) and fitting + widths[cut] <= limit:
                    fitting += widths[cut]
                    cut += 1
                cut = max(1, cut)
                rows.append("".join(row[:cut]))
                used -= sum(widths[:cut])
                row, widths = row[cut:], widths[cut:]
        if kept:
            row.append(char)
            widths.append(width)
            used += width
    rows.append("".join(row))
    return rows


def _paint(style: str, colour: bool) -> str:
    """Drop colours (keep bold, dim, italic, reverse) for --no-color / NO_COLOR."""
    if colour:
        return style
    return " ".join(word for word in style.split() if not word.startswith(("fg:", "bg:", "ansi")))


def _who(line: Line, colour: bool) -> tuple[str, str, str]:
    """(who column text, its style, the style of the text) for one line kind."""
    nick = sender(line)
    kind = line.kind
    if kind == "message":
        return nick, f"fg:{nick_colour(line.nick)}", ""
    if kind == "own":
        return nick, f"fg:{nick_colour(line.nick)} bold", ""
    if kind == "action":
        return "*", f"fg:{nick_colour(line.nick)}", "italic"
    if kind == "whisper_in":
        return f"*{nick}*", "fg:ansimagenta bold", "fg:ansimagenta"
    if kind == "whisper_out":
        return f"-> *{sanitize(line.target)}*", "fg:ansimagenta", "fg:ansimagenta"
    if kind == "presence":
        return "--", "dim", "dim"
    if kind == "notice":
        return "-!-", "fg:ansiyellow bold", "bold"
    if kind == "error":
        return "!!", "fg:ansired bold", "fg:ansired"
    return "--", "fg:ansicyan", ""


def fragments(line: Line, colour: bool = True, width: int | None = None) -> Fragments:
    """One display line as prompt_toolkit formatted text, ending in a newline.

    Layout: `HH:MM` then the "who" column right-aligned to NICK_COLUMN cells
    (by display width, so CJK nicks align), then `│` and the text. Own lines,
    whispers, actions, notices, errors and dimmed join/leave lines each look
    different, also without colour (their who column differs). A line that
    mentions you is shown in reverse video. Every later row (a newline in the
    message, or a wrap at `width` cells) starts with blanks where the time
    and nick would be, so no message can pass for a line of its own.
    """
    who, who_style, text_style = _who(line, colour)
    text = sanitize(line.text, keep_newlines=True)
    if line.kind == "action":
        text = f"{sender(line)} {text}"
    if line.mention:
        who_style += " reverse bold"
        text_style += " bold"
    pad = " " * max(0, NICK_COLUMN - cell_width(who))
    indent = _TIME_CELLS + max(NICK_COLUMN, cell_width(who))
    rows: list[str] = []
    for part in text.split("\n"):
        if not width:
            rows.append(part)
            continue
        # A wrapped row keeps the indentation its line started with (lists, /help).
        lead = " " * min(len(part) - len(part.lstrip(" ")), 8)
        room = width - indent - len(SEPARATOR)
        first, *rest = wrap(part, room, room - len(lead))
        rows.append(first)
        rows.extend(lead + row for row in rest)
    out: Fragments = [
        (_paint("fg:ansibrightblack", colour), clock(line.ts) + " "),
        ("", pad),
        (_paint(who_style, colour), who),
        (_paint("fg:ansibrightblack", colour), SEPARATOR),
    ]
    if line.kind == "action":
        # "* bob waves": the nick keeps its colour inside the text.
        nick = sender(line)
        if rows[0].startswith(nick):
            out.append((_paint(f"fg:{nick_colour(line.nick)} {text_style}", colour), nick))
            rows[0] = rows[0][len(nick) :]
    blank = " " * indent
    for number, row in enumerate(rows):
        if number:
            out.append(("", "\n" + blank))
            out.append((_paint("fg:ansibrightblack", colour), SEPARATOR))
        out.append((_paint(text_style, colour), row))
    out.append(("", "\n"))
    return out


def fragments_text(parts: Fragments) -> str:
    """The characters of formatted text without its styles (for tests and logs)."""
    return "".join(text for _, text in parts)


STATUS_STYLES = {"ok": "fg:ansigreen bold", "warn": "fg:ansiyellow bold", "bad": "fg:ansired bold"}


def status_bar(
    state: ClientState,
    address: str,
    status: str,
    level: str = "ok",
    colour: bool = True,
    width: int | None = None,
    now: float | None = None,
    users_known: bool = True,
) -> Fragments:
    """The bottom toolbar: who and where you are, and how the link is doing.

    `nick@room │ TCP 127.0.0.1:9009 │ 3 users │ rtt 0.4 ms │ connected`,
    and over UDP the live loss counters of `state.seq` (docs/protocol.md §3).
    Teacher controls add the room's operators (`@teacher`) and what
    applies to you (`operator`, `muted 4 min`, `room locked`, `slow 10 s`).
    `users_known` False (the session is over for good) leaves the user count
    out: the last one seen is no longer true, and none is coming.
    When `width` cells are not enough, loss counters that are all zero
    become `no loss`, then the least useful parts go first: the round trip,
    then the operators' names (a count stays), then the server address (a
    student checks it after a reconnect); who you are, your own marks, the
    connection state and the loss counters always stay.
    """
    users = len(state.users)
    rtt = _("rtt {ms:.1f} ms").format(ms=state.rtt * 1000) if state.rtt is not None else _("rtt -")
    seq = state.seq
    lossy = seq.missing or seq.reordered or seq.duplicates
    # (priority to keep: higher stays longer, style, text)
    parts: list[tuple[int, str, str]] = [
        (9, "bold", f"{sanitize(state.nick)}@{sanitize(state.room)}"),
        (8, "", state.transport.upper()),
        (4, "", address),
        (7, "", ngettext("{count} user", "{count} users", users).format(count=users)),
        (2, "", rtt),
        (9, _paint(STATUS_STYLES.get(level, ""), colour), status),
    ]
    if not users_known:
        del parts[3]
    moderation: list[tuple[int, str, str]] = [
        (9, "bold" if mark == _("operator") else _paint(STATUS_STYLES["warn"], colour), mark)
        for mark in state.status_marks(time.time() if now is None else now)
    ]
    shorter: dict[str, str] = {}  # a part that, rather than go, becomes this
    if state.operators:
        shown = _(", ").join(f"@{sanitize(nick)}" for nick in state.operators[:3])
        more = f" +{len(state.operators) - 3}" if len(state.operators) > 3 else ""
        names = f"{shown}{more}"  # @ marks operators, as in user lists
        shorter[names] = ngettext("{count} op", "{count} ops", len(state.operators)).format(count=len(state.operators))
        moderation.append((3, "", names))
    parts[1:1] = moderation  # right after who you are
    counters = _("lost {lost} reordered {reordered} dup {duplicates}").format(
        lost=seq.missing, reordered=seq.reordered, duplicates=seq.duplicates
    )
    if state.transport == "udp":
        parts.append((9, _paint("fg:ansiyellow bold", colour) if lossy else "", counters))

    def layout(kept: list[tuple[int, str, str]]) -> Fragments:
        bar: Fragments = [("", " ")]
        for number, (_priority, style, text) in enumerate(kept):
            if number:
                # the transport and the address read as one: "TCP 127.0.0.1:9009"
                bar.append(("", " " if kept[number - 1][2] == state.transport.upper() and text == address else " │ "))
            bar.append((style, text))
        bar.append(("", " "))
        return bar

    bar = layout(parts)
    if width is not None and cell_width(fragments_text(bar)) > width and state.transport == "udp" and not lossy:
        # Zero counters say the same in fewer cells, so the server's address need not go for them.
        parts = [(keep, style, _("no loss") if text == counters else text) for keep, style, text in parts]
        bar = layout(parts)
    for floor in (2, 3, 4):
        if width is None or cell_width(fragments_text(bar)) <= width:
            break
        parts = [
            part if part[0] > floor else (9, part[1], shorter[part[2]])
            for part in parts
            if part[0] > floor or part[2] in shorter
        ]
        bar = layout(parts)
    return bar
