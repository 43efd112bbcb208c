"""chatlab reliable-udp: acks, a retransmission timer, duplicate suppression and ordering recover every message."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lanchat_lab import reliable
from lanchat_lab.cli import main
from lanchat_lab.reliable import ReliableOptions, ReliableReceiver, ReliableSender, _attempt, run_reliable
from tests.lab.test_scenarios import assert_png


def message(number: int, attempt: int = 1, sent_at: float = 100.0) -> dict[str, object]:
    return {"type": "message", "from": "sender", "text": f"lab rel {number} {sent_at:.6f} try{attempt}"}


def test_receiver_suppresses_duplicates_and_delivers_in_order() -> None:
    """2 before 1 waits in the buffer; a second copy of 1 is acknowledged again but not delivered twice."""
    receiver = ReliableReceiver("r1", "sender")
    acks: list[str] = []
    receiver.send = lambda payload: acks.append(str(payload["text"]))  # type: ignore[method-assign]
    receiver.handle(message(2), 100.01)
    assert receiver.delivered == {} and receiver.waiting == {2}
    receiver.handle(message(1, attempt=2), 100.25)
    assert receiver.delivered == {1: 100.25, 2: 100.25}  # 2 waited for 1's retransmission
    receiver.handle(message(1, attempt=3), 100.30)
    assert receiver.duplicates == 1 and acks == ["ack 2", "ack 1", "ack 1"]
    assert receiver.plain == {2: 100.01}  # plain UDP had only 2's first transmission
    assert receiver.held == {2}


def test_sender_resends_until_everyone_acknowledged_with_a_doubling_timer() -> None:
    """Unacknowledged after RTO: sent again, next timer twice as long; acknowledged by all: left alone."""
    sender = ReliableSender(["r1", "r2"], rto=0.2)
    said: list[str] = []
    sender.say = said.append  # type: ignore[method-assign]
    sender.transmit(1, 10.0)
    assert sender.due[1] == pytest.approx(10.2)
    sender.resend_due(10.1)
    assert len(said) == 1
    sender.resend_due(10.2)
    assert len(said) == 2 and _attempt(said[-1]) == 2 and sender.due[1] == pytest.approx(10.6)
    for nick in ("r1", "r2"):
        sender.handle({"type": "whisper", "from": nick, "to": "sender", "text": "ack 1"}, 10.3)
    sender.resend_due(20.0)
    assert len(said) == 2 and sender.unacknowledged() == [] and sender.retransmissions == 1


@dataclass
class Run:
    """One `chatlab reliable-udp --plot` run: the result the command reported, its text report and its picture."""

    result: dict[str, Any]
    code: int
    out: str
    err: str
    picture: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The scenario (seconds of retransmissions) runs once for the tests below: the command as a user types it,
    with the result it reports kept on its way from run_reliable to the report."""
    results: list[dict[str, Any]] = []

    def keep(options: ReliableOptions) -> dict[str, Any]:
        results.append(run_reliable(options))
        return results[-1]

    picture = tmp_path_factory.mktemp("reliable") / "reliable.png"
    argv = ["reliable-udp", "--messages", "40", "--rate", "100", "--udp-loss", "30", "--seed", "2"]
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        patch.setattr(reliable, "run_reliable", keep)
        code = main([*argv, "--plot", str(picture)])
    assert len(results) == 1, err.getvalue()
    # What --json prints is json.dumps of this result: it must survive the trip.
    result: dict[str, Any] = json.loads(json.dumps(results[0], ensure_ascii=False))
    return Run(result, code, out.getvalue(), err.getvalue(), picture)


@pytest.mark.timeout(60)
def test_reliable_udp_gets_everything_and_pays_the_tail(run: Run) -> None:
    """Under 30 % injected loss plain UDP misses messages; the rebuilt TCP delivers all, in order, some late."""
    result = run.result
    assert result["complete"] and result["retransmissions"] > 0
    for receiver in result["receivers"]:
        assert receiver["reliable_delivered"] == 40 and receiver["in_order"]
        assert receiver["plain_delivered"] < 40
        assert receiver["reliable_latency_ms"]["max"] >= 150  # a lost message waits at least about one RTO (200 ms)
        assert receiver["plain_latency_ms"]["max"] < receiver["reliable_latency_ms"]["max"]


@pytest.mark.timeout(60)
def test_reliable_udp_report_says_so_and_draws_it(run: Run) -> None:
    """The text report says every receiver got everything and that this rebuilds TCP; --plot writes a PNG."""
    assert run.code == 0, run.err
    assert "every receiver got every message, in order, once" in run.out and "You end up rebuilding TCP." in run.out
    assert_png(run.picture)
