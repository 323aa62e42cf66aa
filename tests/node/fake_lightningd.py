"""A fake lightningd: a JSON-RPC 2.0 server on a unix socket that replays canned answers.

It speaks lightningd's framing (requests parsed back to back, every reply
ended by ``"\\n\\n"``), runs each request's handler in its own task so slow
handlers answer after fast ones (out of order, as lightningd does), and can
misbehave on demand: delay a reply, split it over several writes, put several
replies in one write, send a notification first, send garbage, or close the
connection mid-call.

Usage (inside a test's nursery)::

    fake = FakeLightningd(sock, {"getinfo": Reply(result=EXAMPLES["getinfo"])})
    async with anyio.create_task_group() as tg:
        await tg.start(fake.serve)
        ...
        tg.cancel_scope.cancel()

``EXAMPLES`` holds answers copied field for field from Core Lightning's
``doc/schemas`` (``cln_examples.json``).
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from barq.node.lightningd import LightningdNode

__all__ = ["EXAMPLES", "FakeLightningd", "Reply", "Request", "running"]

EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "cln_examples.json").read_text(encoding="utf-8")
)


@dataclass(frozen=True)
class Request:
    """One request as the fake received it; ``index`` counts from 0 in arrival order."""

    id: Any
    method: str
    params: Any
    index: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """What to answer. Exactly one of ``result``/``error``/``raw`` is used (raw first).

    Args:
        result: the JSON-RPC ``result``.
        error: the JSON-RPC ``error`` object (``code``, ``message``, ``data``).
        raw: bytes written as is instead of a reply (for malformed frames).
        delay_s: wait this long before answering.
        close: close the whole connection instead of answering.
        notify_first: write a lightningd-style notification just before the reply.
    """

    result: Any = None
    error: dict[str, Any] | None = None
    raw: bytes | None = None
    delay_s: float = 0.0
    close: bool = False
    notify_first: bool = False


Handler = Reply | Callable[[Request], Reply | Awaitable[Reply]]


def frame(obj: dict[str, Any]) -> bytes:
    """Serialise like lightningd: compact JSON object then a blank line."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


@dataclass
class FakeLightningd:
    """The server. ``handlers`` maps a method to a :class:`Reply` or a (possibly async) function.

    Knobs (change them any time): ``split_writes`` writes each frame in that
    many pieces with a pause in between; ``cuts`` instead cuts it at those
    offsets (negative: from the end, ``(-1,)`` splits the final ``"\n\n"``);
    ``coalesce`` holds frames until that many are ready and writes them in
    one ``send``.
    """

    socket_path: Path
    handlers: dict[str, Handler] = field(default_factory=dict)
    split_writes: int = 1
    cuts: tuple[int, ...] = ()
    coalesce: int = 1
    requests: list[Request] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``socket_path`` until cancelled; ``started()`` once it accepts connections."""
        listener = await anyio.create_unix_listener(self.socket_path)
        async with listener:
            task_status.started()
            await listener.serve(self._connection)

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        writer = _Writer(stream, self)
        decoder = json.JSONDecoder()
        buffer = ""
        async with stream, anyio.create_task_group() as tg:
            writer.scope = tg.cancel_scope
            while True:
                try:
                    data = await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    break
                self.received += data
                buffer += data.decode()
                while buffer.strip():
                    buffer = buffer.lstrip()
                    try:
                        obj, end = decoder.raw_decode(buffer)
                    except json.JSONDecodeError:
                        break  # incomplete: wait for more bytes
                    buffer = buffer[end:]
                    request = Request(
                        id=obj.get("id"),
                        method=obj.get("method", ""),
                        params=obj.get("params"),
                        index=len(self.requests),
                        raw=obj,
                    )
                    self.requests.append(request)
                    tg.start_soon(self._answer, request, writer)
            tg.cancel_scope.cancel()

    async def _answer(self, request: Request, writer: _Writer) -> None:
        handler = self.handlers.get(request.method)
        if handler is None:
            reply = Reply(error={"code": -32601, "message": f"Unknown command '{request.method}'"})
        elif isinstance(handler, Reply):
            reply = handler
        else:
            outcome = handler(request)
            reply = await outcome if inspect.isawaitable(outcome) else outcome
        if reply.delay_s:
            await anyio.sleep(reply.delay_s)
        if reply.close:
            await writer.close()
            return
        if reply.raw is not None:
            data = reply.raw
        elif reply.error is not None:
            data = frame({"jsonrpc": "2.0", "id": request.id, "error": reply.error})
        else:
            data = frame({"jsonrpc": "2.0", "id": request.id, "result": reply.result})
        if reply.notify_first:
            data = (
                frame(
                    {
                        "jsonrpc": "2.0",
                        "method": "message",
                        "params": {"id": request.id, "level": "info", "message": "working on it"},
                    }
                )
                + data
            )
        await writer.write(data)


class _Writer:
    """Serialises writes on one connection, applying the split/coalesce knobs."""

    def __init__(self, stream: anyio.abc.SocketStream, server: FakeLightningd) -> None:
        self.stream = stream
        self.server = server
        self.lock = anyio.Lock()
        self.held: list[bytes] = []
        self.scope: anyio.CancelScope | None = None

    async def write(self, data: bytes) -> None:
        async with self.lock:
            self.held.append(data)
            if len(self.held) < self.server.coalesce:
                return
            data, self.held = b"".join(self.held), []
            for i, piece in enumerate(self._pieces(data)):
                if i:
                    await anyio.sleep(0.005)
                try:
                    await self.stream.send(piece)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return

    def _pieces(self, data: bytes) -> list[bytes]:
        if self.server.cuts:
            points = sorted({c % len(data) for c in self.server.cuts} - {0})
        else:
            pieces = max(1, self.server.split_writes)
            step = max(1, -(-len(data) // pieces))
            points = list(range(step, len(data), step))
        bounds = [0, *points, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    async def close(self) -> None:
        await self.stream.aclose()
        if self.scope is not None:
            self.scope.cancel()


@asynccontextmanager
async def running(
    sock: Path, handlers: dict[str, Handler], **knobs: Any
) -> AsyncIterator[tuple[FakeLightningd, LightningdNode]]:
    fake = FakeLightningd(sock, handlers, **knobs)
    async with anyio.create_task_group() as tg:
        await tg.start(fake.serve)
        async with LightningdNode(sock) as node:
            yield fake, node
        tg.cancel_scope.cancel()
