"""When the payer's lightningd put each part on the wire, from its log (``regtest_bench.py``).

Every method ends in lightningd: ``sendpay`` and ``sendonion`` (barqpay, pay, renepay) log
``Sending <amount> over <n> hops`` / ``Sending <amount> in onion``, ``injectpaymentonion``
(xpay) logs ``injectpaymentonion: sending to channel|peer`` (debug), once per part, with the
time to the millisecond. From those lines the benchmark tells, for every method alike:

* ``rounds``: how many times the method sent parts after waiting for earlier ones to
  resolve. Parts of one plan reach lightningd back to back (one every ~10-20 ms on a busy
  2-core machine, lightningd handles them one at a time); a later round waits at least for
  a failure to come back over the network (>= ~250 ms here). A gap over
  :data:`ROUND_GAP_S` between two sends starts a new round.
* ``first_send_ms``: from the call to lightningd starting on the first part (parameters,
  decoding, route finding and everything else the method does before sending).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime

__all__ = ["ROUND_GAP_S", "SEND_MARKERS", "send_rounds", "send_times"]

#: log fragments lightningd writes once per part it starts sending
SEND_MARKERS = (" lightningd: Sending ", " lightningd: injectpaymentonion: sending to ")
#: a gap between two sends longer than this starts a new round
ROUND_GAP_S = 0.1


def send_times(lines: Iterable[str]) -> list[float]:
    """UNIX times of the sends in lightningd log ``lines`` (``<prefix> <ISO time>Z ...``)."""
    out: list[float] = []
    for line in lines:
        if not any(m in line for m in SEND_MARKERS):
            continue
        fields = line.split(maxsplit=2)
        if len(fields) < 2:
            continue
        try:
            out.append(datetime.fromisoformat(fields[1].replace("Z", "+00:00")).timestamp())
        except ValueError:
            continue
    return out


def send_rounds(times: Sequence[float], gap_s: float = ROUND_GAP_S) -> int:
    """Rounds of sends in ``times`` (sorted): 0 without sends, else 1 + the gaps over ``gap_s``."""
    if not times:
        return 0
    return 1 + sum(1 for a, b in itertools.pairwise(times) if b - a > gap_s)
