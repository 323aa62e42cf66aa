"""The regtest benchmark's reading of the payer's log: sends, rounds, first send."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _regtest_log import send_rounds, send_times

# lines as lightningd v26.06 writes them (the payer of the regtest benchmark), shortened
T = "lightningd-1 2026-12-06T02:58:"
LOG = [
    T + "07.144Z DEBUG   lightningd: Selected channel 124x5x0 (2849378578msat) for selector",
    T + "07.144Z INFO    lightningd: Sending 573063130msat over 3 hops to deliver 573000000msat",
    T + "07.152Z DEBUG   lightningd: Payment: 573000000msat PENDING",
    T + "07.152Z INFO    lightningd: Sending 477148180msat over 4 hops to deliver 477000000msat",
    T + "07.228Z DEBUG   lightningd: Payment part 1/1/1 status 0",
    T + "07.604Z INFO    lightningd: Sending 25500255msat in onion to deliver 25500000msat",
    T + "18.121Z DEBUG   lightningd: injectpaymentonion: sending to channel 110x3x0",
    T + "18.132Z DEBUG   lightningd: injectpaymentonion: sending to peer 03cecb",
    T + "18.133Z DEBUG   plugin-cln-xpay: 11: ->03ce: Sending 1msat over 2 hops",
    "garbage",
]


def test_sends_of_every_method_are_read_with_their_time() -> None:
    times = send_times(LOG)
    assert len(times) == 5  # sendpay x2, sendonion, injectpaymentonion x2 (not the plugin's)
    assert round(times[1] - times[0], 3) == 0.008
    assert round(times[2] - times[0], 3) == 0.46


def test_rounds_split_at_gaps_longer_than_a_plan_takes() -> None:
    assert send_rounds([]) == 0
    assert send_rounds([10.0]) == 1
    assert send_rounds([10.0, 10.02, 10.04, 10.061]) == 1  # one plan, parts back to back
    assert send_rounds([10.0, 10.02, 10.4, 10.42, 11.0]) == 3  # two failures came back
    sendpays = send_times(LOG)[:3]
    assert send_rounds(sendpays) == 2
