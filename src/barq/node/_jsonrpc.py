"""JSON-RPC 2.0 over lightningd's unix socket, natively async (anyio), one multiplexed connection.

Wire facts this module relies on (``lightningd/jsonrpc.c``):

* requests are JSON objects written back to back; lightningd parses them one
  after the other and runs them concurrently, so replies come back in
  *completion* order, not request order: callers are matched by ``id``;
* every reply (and every notification) ends with ``"\\n\\n"``; JSON never
  contains a raw blank line inside a value, so ``"\\n\\n"`` is the frame end;
* objects without an ``id`` are notifications (only sent when enabled) and
  are ignored here, as are replies to callers that were cancelled.

There is no background task: one of the waiting callers reads for everyone
and hands each complete reply to its owner, waking it at once (reader
election, see ``_Connection.wait``). So the client needs no task group and
works from any task; cancelling a caller, even the one reading, loses nothing
for the others (a cancelled read loses no bytes; the role passes on).

If the connection fails (EOF, reset, malformed frame), every call in flight on
it fails with :class:`~barq.errors.RpcConnectionError`; the next call opens a
new connection.

A socket path longer than AF_UNIX allows (107 bytes and a NUL) is reached the
way pyln does: through a descriptor of its directory,
``/proc/self/fd/<n>/lightning-rpc`` (:func:`connect_unix`). lightningd itself
serves such paths (it binds relative to its directory).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec

from barq.errors import LIGHTNINGD, InvalidParams, RpcConnectionError, RpcError

__all__ = ["MAX_UNIX_PATH", "JsonRpcClient", "connect_unix", "map_errors"]

#: the longest socket path ``connect()`` takes (``sun_path`` is 108 bytes with its NUL)
MAX_UNIX_PATH = 107
_FD_DIR = Path("/proc/self/fd")

FRAME_END = b"\n\n"
RECEIVE_CHUNK = 65536
SEND_TIMEOUT_S = 30.0
"""A request is small; if lightningd does not take it within this time the connection is dropped."""


class _ErrorObject(msgspec.Struct):
    code: int = LIGHTNINGD
    message: str = ""
    data: Any = None


class _Envelope(msgspec.Struct):
    """One frame: a reply (``id`` + ``result`` or ``error``) or a notification (no ``id``)."""

    id: str | int | None = None
    result: msgspec.Raw = msgspec.Raw()
    error: _ErrorObject | None = None


@contextmanager
def map_errors(socket_path: Path, method: str) -> Iterator[None]:
    """Translate socket-level exceptions into :class:`RpcConnectionError` naming the socket.

    Raises:
        RpcConnectionError: for any ``OSError`` or broken/closed anyio stream.
    """
    where = f"lightningd RPC socket {socket_path}"
    try:
        yield
    except FileNotFoundError as exc:
        raise RpcConnectionError(f"{where}: no such file (calling {method})") from exc
    except ConnectionRefusedError as exc:
        if socket_path.exists() and not socket_path.is_socket():
            raise RpcConnectionError(f"{where}: not a socket (calling {method})") from exc
        raise RpcConnectionError(
            f"{where}: connection refused, is lightningd running? (calling {method})"
        ) from exc
    except PermissionError as exc:
        raise RpcConnectionError(f"{where}: permission denied (calling {method})") from exc
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream) as exc:
        raise RpcConnectionError(f"{where}: connection closed (calling {method})") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RpcConnectionError(f"{where}: {reason} (calling {method})") from exc


async def connect_unix(path: Path) -> anyio.abc.SocketStream:
    """Connect to the unix socket at ``path``, however long.

    A path over :data:`MAX_UNIX_PATH` bytes is reached through a descriptor of
    its directory (``/proc/self/fd/<n>/<name>``, Linux), closed once connected.

    Raises:
        OSError: the connection failed (as :func:`anyio.connect_unix`), or the
            path is too long and ``/proc/self/fd`` is not available.
    """
    if len(os.fsencode(path)) <= MAX_UNIX_PATH:
        return await anyio.connect_unix(path)
    dirfd = _open_parent(path)
    try:
        return await anyio.connect_unix(_FD_DIR / str(dirfd) / path.name)
    finally:
        os.close(dirfd)


def _open_parent(path: Path) -> int:
    """A descriptor of ``path``'s directory, to reach ``path`` by a short name (procfs and
    a local directory: nothing that blocks for long)."""
    if not _FD_DIR.is_dir():
        raise OSError(f"AF_UNIX path too long ({len(os.fsencode(path))} bytes) and no {_FD_DIR}")
    return os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)


class _Call:
    """One request in flight: filled exactly once with a result or an error.

    ``wakeup`` is set when the call is resolved or when its owner should take
    over reading (spurious wake-ups are harmless: the owner just looks again).
    """

    __slots__ = ("done", "error", "method", "result", "wakeup")

    def __init__(self, method: str) -> None:
        self.method = method
        self.done = False
        self.result: msgspec.Raw = msgspec.Raw()
        self.error: Exception | None = None
        self.wakeup: anyio.Event | None = None

    def resolve(self, result: msgspec.Raw | None = None, error: Exception | None = None) -> None:
        if not self.done:
            self.done = True
            self.error = error
            if result is not None:
                self.result = result
            self.wake()

    def wake(self) -> None:
        if self.wakeup is not None:
            self.wakeup.set()


class _Connection:
    """One socket connection and the calls in flight on it."""

    def __init__(self, stream: anyio.abc.ByteStream, socket_path: Path) -> None:
        self.stream = stream
        self.socket_path = socket_path
        self.calls: dict[str, _Call] = {}
        self.buffer = bytearray()
        self.scan_from = 0
        self.reading = False  # some caller is inside receive() for everyone
        self.send_lock = anyio.Lock()
        self.failure: str | None = None

    def fail(self, reason: str) -> None:
        """Mark the connection dead: every call in flight fails with ``reason``."""
        if self.failure is None:
            self.failure = reason
        calls, self.calls = list(self.calls.values()), {}
        for call in calls:
            call.resolve(error=self._connection_error(call.method))

    def _connection_error(self, method: str) -> RpcConnectionError:
        return RpcConnectionError(
            f"lightningd RPC socket {self.socket_path}: {self.failure} (calling {method})"
        )

    async def close(self, reason: str) -> None:
        self.fail(reason)
        await anyio.aclose_forcefully(self.stream)

    async def send(self, call: _Call, payload: bytes) -> None:
        """Write one request whole (shielded: a half-written request would corrupt the stream)."""
        async with self.send_lock:
            if self.failure is not None:
                call.resolve(error=self._connection_error(call.method))
                return
            with anyio.CancelScope(shield=True) as scope:
                scope.deadline = anyio.current_time() + SEND_TIMEOUT_S
                try:
                    await self.stream.send(payload)
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                    await self.close(f"sending failed ({exc or type(exc).__name__})")
            if scope.cancelled_caught:
                await self.close(f"lightningd did not read a request in {SEND_TIMEOUT_S:g}s")

    async def wait(self, call: _Call) -> None:
        """Return once ``call`` is resolved.

        Reader election: if nobody is reading, this caller reads for everyone,
        one chunk at a time, until its own reply came; otherwise it sleeps
        until its reply is dispatched or it is asked to take over reading.
        Whoever leaves while nobody reads (done, failed or cancelled) wakes
        one other waiter, so there is always a reader while calls wait.
        """
        try:
            while not call.done:
                if self.failure is not None:
                    call.resolve(error=self._connection_error(call.method))
                elif self.reading:
                    call.wakeup = anyio.Event()
                    await call.wakeup.wait()
                else:
                    self.reading = True
                    try:
                        await self._read_once()
                    finally:
                        self.reading = False
        finally:
            if not self.reading:
                self._wake_a_waiter(besides=call)

    def _wake_a_waiter(self, besides: _Call) -> None:
        for other in self.calls.values():
            if other is besides or other.done or other.wakeup is None:
                continue
            if not other.wakeup.is_set():
                other.wakeup.set()
                return

    async def _read_once(self) -> None:
        try:
            data = await self.stream.receive(RECEIVE_CHUNK)
        except anyio.EndOfStream:
            await self.close("lightningd closed the connection")
            return
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            await self.close(f"reading failed ({exc or type(exc).__name__})")
            return
        self.buffer += data
        while True:
            end = self.buffer.find(FRAME_END, self.scan_from)
            if end < 0:
                self.scan_from = max(0, len(self.buffer) - 1)
                return
            frame = bytes(self.buffer[:end])
            del self.buffer[: end + len(FRAME_END)]
            self.scan_from = 0
            if frame.strip() and not self._dispatch(frame):
                await self.close(f"malformed response from lightningd: {_excerpt(frame)}")
                return

    def _dispatch(self, frame: bytes) -> bool:
        """Hand one frame to its caller; False if the frame is not a JSON-RPC object."""
        try:
            envelope = msgspec.json.decode(frame, type=_Envelope)
        except msgspec.DecodeError:
            return False
        if envelope.id is None:
            return True  # a notification
        call = self.calls.pop(str(envelope.id), None)
        if call is None:
            return True  # its caller was cancelled
        if envelope.error is not None:
            err = envelope.error
            data = (
                err.data
                if isinstance(err.data, dict)
                else ({} if err.data is None else {"data": err.data})
            )
            call.resolve(
                error=RpcError(
                    f"{call.method}: {err.message}",
                    method=call.method,
                    rpc_code=err.code,
                    rpc_data=data,
                )
            )
        elif len(envelope.result) == 0:
            call.resolve(
                error=RpcError(
                    f"{call.method}: lightningd's reply has neither result nor error",
                    method=call.method,
                )
            )
        else:
            call.resolve(result=envelope.result)
        return True


def _excerpt(frame: bytes, limit: int = 120) -> str:
    text = frame[:limit].decode("utf-8", errors="replace")
    return repr(text) + ("..." if len(frame) > limit else "")


class JsonRpcClient:
    """A JSON-RPC 2.0 client of lightningd's unix socket; safe to use from many tasks at once.

    Args:
        socket_path: lightningd's ``lightning-rpc`` socket. Nothing is opened
            until the first call.

    Invariants: request ids are unique per client (``barq:<method>#<n>``);
    each call gets exactly one outcome; at most one connection is open.
    """

    def __init__(self, socket_path: str | Path) -> None:
        self.socket_path = Path(socket_path)
        self._ids = itertools.count(1)
        self._conn: _Connection | None = None
        self._connect_lock = anyio.Lock()
        self._closed = False

    async def call_raw(
        self, method: str, params: dict[str, Any] | list[Any] | None = None
    ) -> msgspec.Raw:
        """Call ``method`` and return its ``result`` as undecoded JSON.

        Raises:
            InvalidParams: ``params`` cannot be written as JSON.
            RpcError: lightningd answered with an error object (``rpc_code``,
                ``rpc_data`` as sent) or with neither result nor error.
            RpcConnectionError: the socket is missing or refused the
                connection, the connection closed or broke before the reply
                came, or lightningd sent something that is not JSON-RPC.
        """
        request_id = f"barq:{method}#{next(self._ids)}"
        try:
            payload = msgspec.json.encode(
                {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
            )
        except (TypeError, ValueError) as exc:
            raise InvalidParams(f"{method}: params are not JSON-serialisable ({exc})") from exc
        conn = await self._connection(method)
        call = _Call(method)
        conn.calls[request_id] = call
        try:
            await conn.send(call, payload)
            await conn.wait(call)
        finally:
            conn.calls.pop(request_id, None)
        if call.error is not None:
            raise call.error
        return call.result

    async def call(self, method: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        """Like :meth:`call_raw`, the result decoded to plain Python objects."""
        return msgspec.json.decode(await self.call_raw(method, params))

    async def aclose(self) -> None:
        """Close the connection; calls in flight fail with :class:`RpcConnectionError`.

        Later calls raise :class:`RpcConnectionError` too. Idempotent.
        """
        self._closed = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close("the client was closed")

    async def _connection(self, method: str) -> _Connection:
        async with self._connect_lock:
            if self._closed:
                raise RpcConnectionError(
                    f"lightningd RPC socket {self.socket_path}: the client was closed "
                    f"(calling {method})"
                )
            if self._conn is None or self._conn.failure is not None:
                with map_errors(self.socket_path, method):
                    stream = await connect_unix(self.socket_path)
                self._conn = _Connection(stream, self.socket_path)
            return self._conn
