"""A display line: the `Line` record, and the small pure pieces of a line's text (the date people read,
word boundaries for mentions, one line for a burst of joins or leaves).

Pure and leaf-like: imports only `lanchat.i18n`. `chatclient.state` makes the lines, `chatclient.render`
and the faces show them.
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from lanchat import i18n
from lanchat.i18n import N_, _

_WEEKDAYS = (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"), N_("Saturday"), N_("Sunday"))
_MONTHS = (
    N_("January"), N_("February"), N_("March"), N_("April"), N_("May"), N_("June"),
    N_("July"), N_("August"), N_("September"), N_("October"), N_("November"), N_("December"),
)


def _date(ts: float) -> str:
    """A day and time people read at a glance: "Fri 4 Dec 2026, 16:40" (local time); 2026年12月04日 星期五 16:40."""
    try:
        moment = time.localtime(ts)
    except (OverflowError, OSError, ValueError):  # a server's ts past what time_t holds
        return str(ts)
    if i18n.language() == i18n.ENGLISH:
        return f"{time.strftime('%a', moment)} {moment.tm_mday} {time.strftime('%b %Y, %H:%M', moment)}"
    day = _("{weekday} {day} {month} {year}").format(
        weekday=_(_WEEKDAYS[moment.tm_wday]), day=f"{moment.tm_mday:02d}", month=_(_MONTHS[moment.tm_mon - 1]),
        year=moment.tm_year,
    )
    return f"{day} {moment.tm_hour:02d}:{moment.tm_min:02d}"


def _is_word_char(char: str) -> bool:
    """Part of a word for mention matching; wide (CJK) text has no spaces, so not."""
    return (char.isalnum() or char in "_-") and unicodedata.east_asian_width(char) not in ("W", "F")


BURST_NAMES = 3  # nicks named in a burst's line before "and N more"


def _burst_line(key: tuple[str, str], nicks: list[str], room: Any, ts: Any) -> Line:
    """One display line for consecutive joins, or leaves for one reason."""
    what, reason = key
    if len(nicks) == 1:
        if what == "joined":
            text = _("{nick} joined {room}").format(nick=nicks[0], room=room)
        else:
            text = _("{nick} left ({reason})").format(nick=nicks[0], reason=reason)
        return Line("presence", text, ts, nicks[0])
    named = _(", ").join(nicks[:BURST_NAMES])
    more = len(nicks) - BURST_NAMES
    listing = _("{names}, and {count} more").format(names=named, count=more) if more > 0 else named
    if what == "joined":
        head = _("{count} joined {room}").format(count=len(nicks), room=room)
    else:
        head = _("{count} left ({reason})").format(count=len(nicks), reason=reason)
    return Line("presence", _("{head}: {listing}").format(head=head, listing=listing), ts)


# The counters of a `stats` answer (docs/protocol.md §5, §8), named in the user's language
# (English shows the keys, as README's /stats section explains them); a key not listed
# (a newer server's) is shown as the server spelled it.
STATS_LABELS = {
    "sent": N_("sent"),
    "received": N_("received"),
    "gaps": N_("gaps"),
    "reordered": N_("reordered"),
    "duplicates": N_("duplicates"),
    "send_errors": N_("send_errors"),
    "bad_token": N_("bad_token"),
    "injected_lost": N_("injected_lost"),
    "injected_duplicates": N_("injected_duplicates"),
    "injected_reordered": N_("injected_reordered"),
}


@dataclass(frozen=True)
class Line:
    """One thing to show. `kind` picks the style; text fields are untrusted."""

    kind: str  # message, own, action, whisper_in, whisper_out, presence, notice, error, info
    text: str
    ts: float | None = None
    nick: str = ""
    target: str = ""
    mention: bool = False
    operator: bool = False  # a message the server marked as an operator's (docs/protocol.md §9.4)
