"""The pyln plugin object: lightningd's JSON-RPC on stdin/stdout, Barq's error shape.

:class:`BarqPlugin` is pyln's :class:`~pyln.client.Plugin` with injectable
streams (tests drive it over pipes), a clean shutdown (the engine thread
stops with it) and errors answered with Barq's codes and ``data``
(:func:`barq.plugin.results.rpc_error`).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from contextlib import suppress
from typing import IO, Any, TextIO, cast

from pyln.client import Plugin, RpcException
from pyln.client.plugin import PluginLogHandler, Request, RequestState, hook_fallbacks

from barq.errors import PAY_UNSPECIFIED_ERROR, BarqError, InvalidParams
from barq.plugin.host import (
    EngineHost,
    NodeFactory,
    RuntimeFactory,
    default_node_factory,
    default_runtime_factory,
)
from barq.plugin.options import PluginConfig
from barq.plugin.results import rpc_error

__all__ = ["BarqPlugin"]


class BarqPlugin(Plugin):  # type: ignore[misc]
    """pyln's Plugin with Barq's error shape, injectable streams and a clean shutdown.

    Args:
        stdin, stdout: the JSON-RPC streams (default: the process's).
        node_factory, runtime_factory: what ``init`` starts the engine with.
    """

    def __init__(
        self,
        *,
        stdin: IO[str] | None = None,
        stdout: IO[str] | None = None,
        node_factory: NodeFactory = default_node_factory,
        runtime_factory: RuntimeFactory = default_runtime_factory,
    ) -> None:
        root = logging.getLogger()
        before = set(root.handlers)
        # the real streams, taken before pyln redirects sys.stdout into log notifications
        real_in, real_out = stdin or sys.stdin, stdout or sys.stdout
        super().__init__(stdin=stdin, stdout=stdout, dynamic=True)
        # pyln ignores the streams it is given (it only sets them when *not* given)
        self.stdin: TextIO = cast(TextIO, real_in)
        self.stdout: TextIO = cast(TextIO, real_out)
        self._log_handlers = [
            h for h in root.handlers if h not in before and isinstance(h, PluginLogHandler)
        ]
        # the engine's own log lines (restart reconciliation...) reach lightningd's log
        logging.getLogger("barq").setLevel(logging.INFO)
        self.node_factory = node_factory
        self.runtime_factory = runtime_factory
        self.host: EngineHost | None = None
        self.barq_config: PluginConfig | None = None

    def barq_log(self, message: str, level: str) -> None:
        """Log to lightningd; never raises (a log line must not break a command)."""
        with suppress(Exception):
            self.log(message, level=level)

    def engine(self) -> EngineHost:
        """The engine host.

        Raises:
            BarqError: ``init`` has not run yet.
        """
        if self.host is None:
            raise BarqError("barq is not initialised yet")
        return self.host

    def _parse_request(self, jsrequest: dict[str, Any]) -> Request:
        return _BarqRequest(
            plugin=self,
            req_id=jsrequest.get("id"),
            method=str(jsrequest["method"]),
            params=jsrequest["params"],
            origin=jsrequest.get("origin"),
            background=False,
        )

    def _bind_pos(self, func: Callable[..., Any], params: list[Any], request: Request) -> Any:
        try:
            return super()._bind_pos(func, params, request)
        except TypeError as exc:
            raise InvalidParams(f"{request.method}: {exc}") from None

    def _bind_kwargs(
        self, func: Callable[..., Any], params: dict[str, Any], request: Request
    ) -> Any:
        try:
            return super()._bind_kwargs(func, params, request)
        except TypeError as exc:
            raise InvalidParams(f"{request.method}: {exc}") from None

    def _dispatch_request(self, request: Request) -> None:
        """pyln's dispatch, without a traceback in the log for Barq's own (expected) errors.

        (``request`` is injected as the handlers' *first* parameter: pyln
        inserts it at its index among positional params, so a later position
        would swallow a user argument when fewer are given.)
        """
        method = self.methods.get(request.method)
        if method is None:
            request.set_exception(InvalidParams(f"unknown method {request.method}"))
            return
        request.background = method.background
        try:
            result = self._exec_func(method.func, request)
            if not method.background:
                request.set_result(result)
        except Exception as exc:
            fallback = hook_fallbacks.get(request.method)
            if fallback is not None:  # a hook must never answer with an error
                self.log(
                    f"hook {request.method} failed, answering {fallback}: {exc}", level="error"
                )
                request.set_result(fallback)
            else:
                request.set_exception(exc)

    def serve(self) -> None:
        """Read and dispatch requests until stdin closes (or ``shutdown``), then stop the engine."""
        try:
            partial = b""
            for line in self.stdin.buffer:
                partial += line
                msgs = partial.split(b"\n\n")
                if len(msgs) < 2:
                    continue
                partial = self._multi_dispatch(msgs)
        except SystemExit:
            pass
        finally:
            self.close()

    def run(self) -> None:
        if os.environ.get("LIGHTNINGD_PLUGIN", None) != "1":
            self.print_usage()
            return
        self.serve()

    def close(self) -> None:
        """Stop the engine thread and detach pyln's log handler. Idempotent."""
        if self.host is not None:
            self.host.close()
        root = logging.getLogger()
        for h in self._log_handlers:
            root.removeHandler(h)
        self._log_handlers = []


class _BarqRequest(Request):  # type: ignore[misc]
    """pyln's Request, answering errors with ``data`` and Barq's code mapping."""

    state: RequestState
    termination_tb: str | None

    def set_exception(self, exc: Exception | RpcException) -> None:
        if self.state != RequestState.PENDING:
            raise ValueError(
                f"Cannot set the exception of a request that is not pending, current state is "
                f"{self.state}. Request previously terminated at\n{self.termination_tb}"
            )
        self.exc = exc
        code, message, data = rpc_error(exc, method=self.method)
        if code == PAY_UNSPECIFIED_ERROR and not isinstance(exc, BarqError | RpcException):
            tb = "".join(traceback.format_exception(exc))
            self.plugin.log(f"unexpected error in {self.method}: {tb}", level="error")
        error: dict[str, Any] = {"code": code, "message": message}
        if data:
            error["data"] = data
        self._write_result({"jsonrpc": "2.0", "id": self.id, "error": error})
        self.state = RequestState.FAILED
        self.termination_tb = "".join(traceback.extract_stack().format()[:-1])
