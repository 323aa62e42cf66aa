"""Request/reply over memory object streams (the only two helpers actors share).

A request carries the send end of a fresh one-shot stream with buffer 0, so
the reply is handed over directly: either the requester receives it, or
the requester is gone (cancelled, stream closed) and the responder's send
raises ``BrokenResourceError``, which :func:`reply` reports as ``False`` so
the responder can undo what the reply would have handed out (reservations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

__all__ = ["ask", "reply"]

R = TypeVar("R")


async def ask(
    outbox: MemoryObjectSendStream[Any], build: Callable[[MemoryObjectSendStream[R]], Any]
) -> R:
    """Send ``build(reply_stream)`` to ``outbox`` and wait for the one reply.

    Raises:
        anyio.BrokenResourceError: the actor behind ``outbox`` is gone.
        anyio.EndOfStream: it closed the reply stream without answering.
    """
    tx, rx = anyio.create_memory_object_stream[R](0)
    with rx:
        await outbox.send(build(tx))
        return await rx.receive()


async def reply(stream: MemoryObjectSendStream[R], value: R) -> bool:
    """Answer a request once and close the reply stream.

    Returns:
        False when the requester is no longer listening (nothing was delivered).
    """
    with stream:
        try:
            await stream.send(value)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
    return True
