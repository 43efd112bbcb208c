"""chatlab restart's closing lines follow what the bots noticed (the fixed sentence contradicted --graceful's table)."""

from __future__ import annotations

from typing import Any

from lanchat_lab.connreport import restart_summary


def result(tcp: list[float | None], udp: list[float | None]) -> dict[str, Any]:
    bots = [{"transport": "tcp", "noticed_after": after} for after in tcp]
    bots += [{"transport": "udp", "noticed_after": after} for after in udp]
    return {"bots": bots}


def test_graceful_stop_udp_knew_at_once_because_of_the_goodbye() -> None:
    """--graceful: UDP bots noticed in 2 ms; the summary credits the goodbye, not a timeout."""
    text = "\n".join(restart_summary(result([0.002, 0.002], [0.002, 0.002])))
    assert "UDP knew at once too, but only because the server said goodbye" in text
    assert "only silence (a timeout)" not in text.split("\n")[1]


def test_crash_udp_noticed_only_by_silence() -> None:
    """SIGKILL: UDP bots noticed after their timeout; the summary says silence told them."""
    text = "\n".join(restart_summary(result([0.003], [1.26, 1.26])))
    assert text.startswith("-> TCP knows at once")
    assert "UDP has no connection to end" in text and "knew at once too" not in text


def test_udp_only_run_does_not_talk_about_tcp() -> None:
    """--transports udp: no TCP sentence."""
    assert not any("TCP knows" in line for line in restart_summary(result([], [1.3])))
