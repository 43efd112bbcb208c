"""`chatsrv export`: a lesson's transcript from the database, as text, JSON lines or HTML.

Reads the SQLite file a server writes (also while the server runs: WAL lets
a reader in) with `chatsrv.sqlitefile.read_events` and writes to stdout:

- `text`: one line per event, `2024-05-01 10:02:03 #lobby <alice> hello`;
- `jsonl`: one JSON object per line, shaped like the protocol's payloads
  (docs/protocol.md section 5) plus `transport` and a readable local `time`;
- `html`: one self-contained page a teacher can hand out, a section per
  room, timestamps, a colour per nick. Every stored string is escaped, so a
  message `<script>` stays text and never becomes markup, and each nick and
  text is isolated in a `<bdi>`.

An operator's messages carry its mark, which no nick can contain (docs/protocol.md
§9.4): `<@teacher>` in text and HTML, `"operator": true` in JSON lines.

In every format, controls and format characters (category Cf: zero-width
characters, tags, bidi controls) are visible escapes: `\\u202e` in text and
HTML, JSON `\\u202e` escapes in JSON lines (which decode to the same text).

Times are shown in the local time zone of the machine that exports.

Language: text and HTML speak the user's language (`--lang`, else the
locale, lanchat.i18n): headings, summaries and the words of event lines;
what the server stored in English (a mute's "for 5 minute(s)", a restart's
"server restarted after 4 s") is shown translated when it has a known form.
JSON lines are for programs and stay English whatever the language.

The lesson's structure is marked as what it is: announcements, topics,
mutes, locks, slow mode, kicks and bans (with the reason) and restarts are
`[kind]` lines in text, `notice` records with `event` in JSON lines, and
items of class `notice KIND` in HTML. A restart is one line per room
("server restarted after 4 s; 3 back within 2 s"): the members who came
back within `RETURN_WINDOW` are summed into it, not listed as joins.

Imports: chatsrv.store and chatsrv.sqlitefile only (and the standard library).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TextIO

from chatsrv.sqlitefile import read_events
from chatsrv.store import DEFAULT_PATH, MEMORY, MODERATION_KINDS, Event, StoreError
from lanchat import i18n, platforms
from lanchat.cliargs import Parser
from lanchat.display import escaped_at, safe_text
from lanchat.i18n import N_, Lazy, _, ngettext
from lanchat.reasons import left_reason

FORMATS = ("text", "jsonl", "html")
RETURN_WINDOW = 60.0  # seconds after a restart in which returning members are summed into it (as the server counts)

# Dark enough to read on white.
NICK_COLOURS = (
    "#b71c1c",
    "#1a237e",
    "#1b5e20",
    "#e65100",
    "#4a148c",
    "#006064",
    "#880e4f",
    "#5d4037",
    "#0d47a1",
    "#33691e",
    "#bf360c",
    "#311b92",
)


def parse_date(text: str) -> float:
    """`2024-05-01`, `2024-05-01 14:30` or `2024-05-01T14:30:00` (local time) as epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("wants a date like 2024-05-01 or '2024-05-01 14:30', not {text!r}").format(text=text)
        ) from None
    return moment.timestamp()  # a naive date-time counts as local time


parse_date.__name__ = Lazy(N_("date"))  # argparse names the type in "invalid date value"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="chatsrv export",
        description=_(
            "Write the saved chat transcript to stdout, for example "
            "'chatsrv export --format html > lesson.html'. Whispers appear only if the "
            "server ran with --store-whispers."
        ),
    )
    parser.add_argument("--db", metavar="PATH", default=DEFAULT_PATH, help=_("the database file chatsrv wrote"))
    parser.add_argument("--room", default=None, help=_("only this room (any letter case); default: every room"))
    parser.add_argument(
        "--since",
        metavar="DATE",
        type=parse_date,
        default=None,
        help=_("only what happened from DATE on, local time: 2024-05-01 or '2024-05-01 14:30'"),
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help=_("text lines, JSON lines (always English: for programs) or one HTML page"),
    )
    i18n.add_language_option(parser)
    return parser


# --- shared helpers ----------------------------------------------------------


def local_time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts).astimezone()


# Categories shown as escapes: controls (Cc) could drive a terminal; format characters (Cf:
# zero-width characters, tags, bidi controls such as U+202E) hide text or reorder the rest of
# a line; line and paragraph separators (Zl, Zp) break a line where no newline is seen.
def printable(text: str) -> str:
    """Text shown safely in a transcript (the shared rule of `lanchat.display`; newline and tab are kept).

    So a transcript cannot drive a terminal, hide words (zero-width, tag
    characters, variation selectors) or reverse the rest of a line (U+202E).
    """
    return safe_text(text, keep="\n\t")


class NickColours:
    """A colour per nick for one page: the first twelve nicks all differ."""

    def __init__(self) -> None:
        self.given: dict[str, str] = {}

    def __call__(self, nick: str) -> str:
        key = nick.casefold()
        colour = self.given.get(key)
        if colour is None:
            colour = self.given[key] = NICK_COLOURS[len(self.given) % len(NICK_COLOURS)]
        return colour


# What the server stores in English (chatsrv.operators, chatsrv.service, sum_restarts), and how it reads
# in the user's language; anything else is shown as stored.
STORED = (
    (re.compile(r"for (?P<minutes>[\d.e+]+) minute\(s\)"), N_("for {minutes} minute(s)")),
    (re.compile(r"until an operator unmutes them"), N_("until an operator unmutes them")),
    (re.compile(r"the mute ran out"), N_("the mute ran out")),
    (re.compile(r"(?P<seconds>[\d.e+]+) s"), N_("{seconds} s")),
    (re.compile(r"server restarted after (?P<seconds>\d+) s"), N_("server restarted after {seconds} s")),
    (re.compile(r"server restarted"), N_("server restarted")),
    (re.compile(r"(?P<started>.+); (?P<count>\d+) back within (?P<seconds>\d+) s"),
     N_("{started}; {count} back within {seconds} s")),
    (re.compile(r"(?P<started>.+); nobody back within (?P<seconds>[\d.]+) s"),
     N_("{started}; nobody back within {seconds} s")),
)

# The label of each kind of notice ([kick] in text, the badge in HTML).
KIND_LABELS = {
    "announce": N_("announce"),
    "topic": N_("topic"),
    "mute": N_("mute"),
    "unmute": N_("unmute"),
    "lock": N_("lock"),
    "unlock": N_("unlock"),
    "slow": N_("slow"),
    "kick": N_("kick"),
    "ban": N_("ban"),
    "restarted": N_("restarted"),
}


def stored(text: str) -> str:
    """A detail the server stored in English, in the user's language when it has a known form."""
    for pattern, template in STORED:
        found = pattern.fullmatch(text)
        if found is not None:
            fields = found.groupdict()
            if "started" in fields:
                fields["started"] = stored(fields["started"])
            return _(template).format(**fields)
    return text


def kind_label(kind: str) -> str:
    return _(KIND_LABELS[kind]) if kind in KIND_LABELS else kind


def describe(event: Event) -> str:
    """What happened, in words, for events other than messages (moderation: a whole sentence)."""
    kind, by, to, text, detail = event.kind, event.nick, event.to, event.text, event.reason
    if kind == "joined":
        return _("is back") if detail == "back" else _("joined")
    if kind == "left":
        if detail == "moved" and to:
            return _("left (moved to {room})").format(room=to)
        return _("left ({reason})").format(reason=left_reason(detail, _)) if detail else _("left")
    if kind == "renamed":
        return _("is now {nick}").format(nick=event.new)
    if kind == "announce":
        return _("announcement from {by}: {text}").format(by=by, text=text)
    if kind == "topic":
        if text is None:
            return _("{by} cleared the topic").format(by=by)
        return _("{by} set the topic: {text}").format(by=by, text=text)
    if kind == "mute":
        if detail:
            return _("{by} muted {nick} {duration}").format(by=by, nick=to, duration=stored(detail))
        return _("{by} muted {nick}").format(by=by, nick=to)
    if kind == "unmute":
        if by:
            return _("{by} unmuted {nick}").format(by=by, nick=to)
        why = stored(detail) if detail else _("time ran out")
        return _("the mute of {nick} ended ({why})").format(nick=to, why=why)
    if kind in ("lock", "unlock"):
        every = detail == "every room"
        templates = {
            ("lock", True): N_("{by} locked every room"),
            ("lock", False): N_("{by} locked the room"),
            ("unlock", True): N_("{by} unlocked every room"),
            ("unlock", False): N_("{by} unlocked the room"),
        }
        return _(templates[kind, every]).format(by=by)
    if kind == "slow":
        if detail == "off":
            return _("{by} turned off slow mode").format(by=by)
        return _("{by} set slow mode: one message every {interval}").format(by=by, interval=stored(detail or ""))
    if kind in ("kick", "ban"):
        if text:
            template = N_("{by} kicked {nick}: {reason}") if kind == "kick" else N_("{by} banned {nick}: {reason}")
        else:
            template = N_("{by} kicked {nick}") if kind == "kick" else N_("{by} banned {nick}")
        return _(template).format(by=by, nick=to, reason=text)
    if kind == "restarted":
        return stored(text) if text else _("server restarted")
    return kind


def sum_restarts(events: Iterable[Event], window: float = RETURN_WINDOW) -> Iterator[Event]:
    """The events, with the members back within `window` after a restart summed into its event.

    Looks ahead at most `window` seconds after a restart, so a long
    transcript still streams.
    """
    held: list[Event] = []  # a restart and what followed it, while its window is open
    # Members coming back belong to the latest restart of their room: after two restarts in one window,
    # the first one's returns must not be counted again under the second (or the first under the second).
    latest: dict[str | None, int] = {}  # room key -> index in `held` of that room's latest restart
    back: dict[int, list[float]] = {}  # index in `held` of a restart -> times members came back after it
    open_until: float | None = None
    for event in events:
        if open_until is not None and event.ts > open_until:
            yield from _summed(held, back)
            held, latest, back, open_until = [], {}, {}, None
        key = event.room.casefold() if event.room is not None else None
        if event.kind == "restarted":
            latest[key] = len(held)
            back[len(held)] = []
            held.append(event)
            open_until = event.ts + window
        elif open_until is None:
            yield event
        elif event.kind == "joined" and event.reason == "back" and key in latest:
            back[latest[key]].append(event.ts)
        else:
            held.append(event)
    yield from _summed(held, back)


def _summed(held: list[Event], back: dict[int, list[float]]) -> Iterator[Event]:
    for index, event in enumerate(held):
        if event.kind == "restarted":
            times = back.get(index, [])
            started = event.text or "server restarted"
            if times:
                event = event._replace(
                    text=f"{started}; {len(times)} back within {max(0, math.ceil(max(times) - event.ts))} s"
                )
            else:
                event = event._replace(text=f"{started}; nobody back within {RETURN_WINDOW:g} s")
        yield event


# --- text --------------------------------------------------------------------


def text_line(event: Event) -> str:
    """One event as a line: `2024-05-01 10:02:03 #lobby <alice> hello`."""
    stamp = local_time(event.ts).strftime("%Y-%m-%d %H:%M:%S")
    text = event.text or ""
    if event.kind == "message":
        sender = f"@{event.nick}" if event.operator else event.nick
        line = f"{stamp} #{event.room} " + (f"* {sender} {text}" if event.action else f"<{sender}> {text}")
    elif event.kind == "whisper":
        whisper = _("(whisper)")
        line = f"{stamp} {whisper} {event.nick} -> {event.to}: {text}"
    elif event.kind in MODERATION_KINDS:
        line = f"{stamp} #{event.room} !! [{kind_label(event.kind)}] {describe(event)}"
    else:
        arrow = {"joined": "-->", "left": "<--"}.get(event.kind, "--")
        line = f"{stamp} #{event.room} {arrow} {event.nick} {describe(event)}"
    # Continuation lines of a multi-line message are indented under the text.
    return printable(line).replace("\n", "\n" + " " * 20)


def write_text(events: Iterable[Event], out: TextIO) -> int:
    count = 0
    for event in events:
        out.write(text_line(event) + "\n")
        count += 1
    return count


# --- JSON lines ----------------------------------------------------------------


def json_record(event: Event) -> dict[str, Any]:
    """The event as the protocol sends it, plus `transport` and a readable `time`."""
    record = event.payload()
    if event.transport:
        record["transport"] = event.transport
    record["time"] = local_time(event.ts).isoformat(timespec="seconds")
    return record


def _json_escape(char: str) -> str:
    """`char` as a JSON string escape (a surrogate pair above U+FFFF)."""
    encoded: str = json.dumps(char)  # ensure_ascii: exactly the escape, in quotes
    return encoded[1:-1]


def json_line(record: dict[str, Any]) -> str:
    """One JSON line: letters of every script as they are, hidden characters as `\\uXXXX` escapes.

    The escapes decode to the very same text, so scripts reading the file
    lose nothing, while a person reading it sees where the format characters
    are. json.dumps already escapes controls; they can only occur inside
    strings, so replacing them cannot touch the JSON's own syntax.
    """
    line = json.dumps(record, ensure_ascii=False)
    if line.isascii():
        return line  # json.dumps escaped every ASCII control already
    return "".join(
        _json_escape(char) if char not in "\n\t" and escaped_at(line, position) else char
        for position, char in enumerate(line)
    )


def write_jsonl(events: Iterable[Event], out: TextIO) -> int:
    count = 0
    for event in events:
        out.write(json_line(json_record(event)) + "\n")
        count += 1
    return count


# --- HTML ----------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 56em; margin: 2em auto; \
padding: 0 1em; line-height: 1.45; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
.summary { color: #555; margin-top: 0; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1em; color: #555; margin: 1.2em 0 0.4em; }
ol { list-style: none; padding: 0; margin: 0; }
li { padding: 0.1em 0; }
time { color: #888; font-variant-numeric: tabular-nums; margin-right: 0.6em; }
.nick { font-weight: bold; unicode-bidi: isolate; }
bdi { unicode-bidi: isolate; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.event, .event .nick { color: #777; font-weight: normal; font-style: italic; }
.action .text { font-style: italic; }
.whisper .to { color: #555; }
.notice { background: #fff8e1; }
.notice .kind { font-size: 0.8em; text-transform: uppercase; color: #8d6e00; margin-right: 0.5em; }
@media print { body { margin: 0; max-width: none; } }
"""


def _shown(text: str) -> str:
    """A stored string for the page: hidden characters as visible escapes, then HTML-escaped."""
    return html.escape(printable(text))


def html_item(event: Event, colours: NickColours) -> str:
    """One event as an `<li>`; every stored string goes through `_shown`.

    Each nick and each text sits in its own `<bdi>`, so right-to-left text
    in one (Arabic, Hebrew) cannot move the words around it.
    """

    operator_title = html.escape(_("operator"))
    to = html.escape(_("to"))

    def _nick_html(nick: str | None, operator: bool = False) -> str:
        name = nick or "?"
        if operator:
            # The operator's mark, outside the nick's <bdi> so no nick can carry or move it.
            return (
                f'<span class="nick operator" title="{operator_title}" style="color:{colours(name)}">'
                f"@<bdi>{_shown(name)}</bdi></span>"
            )
        return f'<span class="nick" style="color:{colours(name)}"><bdi>{_shown(name)}</bdi></span>'

    moment = local_time(event.ts)
    stamp = f'<time datetime="{moment.isoformat(timespec="seconds")}">{moment:%H:%M:%S}</time>'
    text = f"<bdi>{_shown(event.text or '')}</bdi>"
    if event.kind == "message":
        anchor = f' id="m{int(event.id)}"' if event.id is not None else ""
        sender = _nick_html(event.nick, event.operator)
        if event.action:
            return f'<li class="message action"{anchor}>{stamp}<span class="text">* {sender} {text}</span></li>'
        return f'<li class="message"{anchor}>{stamp}{sender} <span class="text">{text}</span></li>'
    if event.kind == "whisper":
        return (
            f'<li class="whisper">{stamp}{_nick_html(event.nick)} <span class="to">{to}</span> '
            f'{_nick_html(event.to)} <span class="text">{text}</span></li>'
        )
    if event.kind == "renamed":
        now = html.escape(_("is now {nick}")).format(nick=_nick_html(event.new))
        return f'<li class="event">{stamp}{_nick_html(event.nick)} {now}</li>'
    if event.kind in MODERATION_KINDS:
        return (
            f'<li class="notice {event.kind}">{stamp}<span class="kind">{_shown(kind_label(event.kind))}</span>'
            f'<span class="text"><bdi>{_shown(describe(event))}</bdi></span></li>'
        )
    return f'<li class="event">{stamp}{_nick_html(event.nick)} {_shown(describe(event))}</li>'


WEEKDAYS = (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"), N_("Saturday"), N_("Sunday"))
MONTHS = (
    N_("January"), N_("February"), N_("March"), N_("April"), N_("May"), N_("June"),
    N_("July"), N_("August"), N_("September"), N_("October"), N_("November"), N_("December"),
)


def day_heading(moment: datetime) -> str:
    """`Saturday 05 December 2026` in English (what %A %d %B %Y gave), the language's own order in others."""
    return _("{weekday} {day} {month} {year}").format(
        weekday=_(WEEKDAYS[moment.weekday()]), day=f"{moment.day:02d}", month=_(MONTHS[moment.month - 1]),
        year=moment.year,
    )


def write_html(events: Iterable[Event], out: TextIO, source: str, room: str | None, since: float | None) -> int:
    """One self-contained page: a section per room (whispers last), a heading per day."""
    sections: dict[str, list[Event]] = {}
    titles: dict[str, str] = {}
    count = 0
    for event in events:
        key = event.room.casefold() if event.room is not None else "\0whispers"
        if key not in sections:
            sections[key] = []
            titles[key] = f"#{event.room}" if event.room is not None else _("Whispers")
        sections[key].append(event)
        count += 1
    whispers = sections.pop("\0whispers", None)
    ordered = list(sections.items()) + ([("\0whispers", whispers)] if whispers else [])

    title = _("lanchat transcript: #{room}").format(room=room) if room else _("lanchat transcript")
    messages = sum(1 for _key, items in ordered for event in items if event.kind == "message")
    summary = ngettext("{count} message", "{count} messages", messages).format(count=messages)
    if ordered:
        first = min(items[0].ts for _key, items in ordered)
        last = max(items[-1].ts for _key, items in ordered)
        summary = _("{summary} from {first} to {last}").format(
            summary=summary, first=f"{local_time(first):%Y-%m-%d %H:%M}", last=f"{local_time(last):%Y-%m-%d %H:%M}"
        )
    if since is not None:
        summary = _("{summary} (since {since})").format(summary=summary, since=f"{local_time(since):%Y-%m-%d %H:%M}")
    summary = _("{summary}; exported {when} from {source}.").format(
        summary=summary, when=f"{datetime.now().astimezone():%Y-%m-%d %H:%M}", source=source
    )

    colours = NickColours()
    write = out.write
    write(f'<!DOCTYPE html>\n<html lang="{i18n.language().replace("_", "-")}">\n<head>\n<meta charset="utf-8">\n')
    write('<meta name="viewport" content="width=device-width, initial-scale=1">\n')
    write(f"<title>{_shown(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n")
    write(f'<h1>{_shown(title)}</h1>\n<p class="summary">{_shown(summary)}</p>\n')
    if not ordered:
        write(f"<p>{_shown(_('Nothing was saved for this choice.'))}</p>\n")
    for key, items in ordered:
        write(f"<section>\n<h2>{_shown(titles[key])}</h2>\n")
        day = None
        for event in items:
            moment = local_time(event.ts)
            if moment.date() != day:
                if day is not None:
                    write("</ol>\n")
                day = moment.date()
                write(f"<h3>{_shown(day_heading(moment))}</h3>\n<ol>\n")
            write(html_item(event, colours) + "\n")
        write("</ol>\n</section>\n")
    write("</body>\n</html>\n")
    return count


# --- command -------------------------------------------------------------------


def _fail(message: str, code: int = 1) -> int:
    print(_("chatsrv export: {message}").format(message=message), file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    i18n.setup(sys.argv[1:] if argv is None else argv)  # before the parser: its help is translated when built
    args = build_parser().parse_args(argv)
    if args.db == MEMORY:
        nothing_kept = _("{memory} keeps nothing to export; give the file the server used (--db PATH)")
        return _fail(nothing_kept.format(memory=MEMORY), 2)
    if out is None:
        # Platform hook: a file or pipe gets UTF-8 (the HTML says utf-8; nicks can be in any script),
        # a console its own encoding with escapes (lanchat.platforms.document_output).
        out = sys.stdout = platforms.document_output(sys.stdout)
    events = sum_restarts(read_events(args.db, room=args.room, since=args.since))
    try:
        if args.format == "text":
            count = write_text(events, out)
        elif args.format == "jsonl":
            count = write_jsonl(events, out)
        else:
            count = write_html(events, out, args.db, args.room, args.since)
        out.flush()
    except StoreError as error:
        if "no database" in str(error):
            return _fail(_("{error} (the server's start-up lines say which file it uses)").format(error=error))
        return _fail(str(error))
    except BrokenPipeError:
        # `chatsrv export | head`: the reader left; that is not an error.
        sys.stdout = None  # no flush at exit into the closed pipe
        return 0
    if count == 0:
        if args.room:
            nothing = _("nothing saved matches room {room}").format(room=args.room)
        else:
            nothing = _("nothing saved matches")
        print(_("chatsrv export: {message}").format(message=nothing), file=sys.stderr)
    return 0
