"""The latency scenario's sampled receivers and the scale scenario's join modes (no server needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from lanchat_bench.codecs import Irc, LanchatTcp  # scripts/ is not on the default path
from lanchat_bench.scenarios.latency import sampled_indices
from lanchat_bench.scenarios.scale import BatchJoinsTcp, codec_for


def test_sampled_receivers_are_spread_over_the_join_order() -> None:
    """Five receivers: the first, the last and three evenly between; fewer members: all of them."""
    assert sampled_indices(50) == [0, 12, 24, 37, 49]
    assert sampled_indices(3) == [0, 1, 2]


def test_scale_bots_ask_for_batched_joins_only_from_lanchat() -> None:
    """--joins batch: lanchat's hello carries the feature; v1 and other servers' codecs are unchanged."""
    lanchat = LanchatTcp()
    assert isinstance(codec_for(lanchat, "batch"), BatchJoinsTcp)
    assert codec_for(lanchat, "v1") is lanchat
    irc = Irc()
    assert codec_for(irc, "batch") is irc
    with pytest.raises(ValueError):
        codec_for(lanchat, "both")
