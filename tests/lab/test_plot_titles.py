"""Plot titles say what the data shows, not a fixed sentence (wrong for --udp-loss and --udp-delay)."""

from __future__ import annotations

from typing import Any

from lanchat_lab.plot import _tail_title, _timeline_title


def transports(tcp_p99: float, udp_p99: float, tcp_lost: int = 0, udp_lost: int = 0) -> dict[str, Any]:
    return {
        "tcp": {"lost": tcp_lost, "latency_ms": {"p99": tcp_p99, "max": tcp_p99 * 1.1}},
        "udp": {"lost": udp_lost, "latency_ms": {"p99": udp_p99, "max": udp_p99 * 1.1}},
    }


def test_udp_delay_gives_udp_the_tail() -> None:
    """With --udp-delay the long tail is UDP's, and the title says so."""
    assert _tail_title(transports(0.7, 70.0), ["tcp", "udp"]).startswith("latency distribution: the long tail is UDP's")


def test_real_loss_gives_tcp_the_tail() -> None:
    """Under --netns-loss TCP waits for retransmissions: its tail."""
    assert "the long tail is TCP's (p99 202 ms" in _tail_title(transports(202.4, 2.7), ["tcp", "udp"])


def test_alike_tails_are_called_alike() -> None:
    """On quiet loopback neither transport has a tail worth naming."""
    assert "tails alike" in _tail_title(transports(0.6, 0.8), ["tcp", "udp"])


def test_timeline_title_counts_what_each_lost() -> None:
    """--udp-loss: TCP lost nothing, UDP lost some; the title gives both numbers."""
    title = _timeline_title(transports(0.7, 0.8, tcp_lost=0, udp_lost=89), ["tcp", "udp"])
    assert title == "every delivery: TCP lost 0, slowest 1 ms; UDP lost 89, slowest 1 ms"
