"""When a bench session goes wrong: the wall-clock guard and the records of a crashed run."""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import trio

from barq.bench.metrics import PaymentRecord
from barq.bench.oracle import OracleResult
from barq.errors import BarqError

if TYPE_CHECKING:
    from barq.bench.runner import Session

__all__ = ["crashed_records", "guarded"]

T = TypeVar("T")


async def guarded(fn: Callable[[], Awaitable[T]], *, wall_s: float, sim_s: float) -> T:
    """Run ``fn()`` under trio, cancelled after ``wall_s`` wall seconds or ``sim_s`` clock seconds.

    Under a ``MockClock`` an engine stuck in a loop may never let the clock
    reach a deadline (or race it forward forever); a watchdog thread cancels
    the run through the trio token when the wall time is up.

    Raises:
        BarqError: the time ran out ("session timed out ...").
    """
    token = trio.lowlevel.current_trio_token()
    stop = threading.Event()
    with trio.CancelScope(deadline=trio.current_time() + sim_s) as scope:

        def watchdog() -> None:
            if not stop.wait(wall_s):
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(scope.cancel)

        threading.Thread(target=watchdog, name="barq-bench-watchdog", daemon=True).start()
        try:
            return await fn()
        finally:
            stop.set()
    raise BarqError(f"session timed out (limit {wall_s:.0f} s wall, {sim_s:.0f} s simulated)")


def crashed_records(
    session: Session,
    strategy: str,
    exc: BaseException,
    cache: Mapping[tuple[str, int], OracleResult],
) -> list[PaymentRecord]:
    """The records of a session run that crashed or timed out: every payment failed.

    ``cache`` holds the oracle's answers already known (``(session key,
    payment position)``); the others count as infeasible.
    """
    msg = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
    dests = [d for batch in session.batches for d in batch]
    unknown = OracleResult(max_flow_msat=0, feasible=False)
    orcs = [cache.get((session.key, j), unknown) for j in range(len(dests))]
    return [
        PaymentRecord(
            strategy=strategy,
            amount_msat=session.amount_msat,
            source=session.source,
            destination=d,
            feasible=o.feasible,
            max_flow_msat=o.max_flow_msat,
            oracle_fee_msat=o.fee_msat,
            succeeded=False,
            attempts=0,
            rounds=0,
            fee_msat=0,
            sim_time_s=0.0,
            compute_s=0.0,
            error=f"session crashed: {msg}",
        )
        for d, o in zip(dests, orcs, strict=True)
    ]
