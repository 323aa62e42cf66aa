"""The pyln plugin object: lightningd's JSON-RPC on stdin/stdout, Barq's error shape.

:class:`BarqPlugin` is pyln's :class:`~pyln.client.Plugin` with injectable
streams (tests drive it over pipes), a clean shutdown (the engine thread
stops with it) and errors answered with Barq's codes and ``data``
(:func:`barq.plugin.results.rpc_error`). On top of pyln:

* every log line and every ``message`` notification is bounded
  (:func:`barq.errors.bounded`: lightningd aborts on a log line over 256 KB);
* parameters that are neither an object nor an array, a missing or unknown
  parameter, too many positional ones: -32602 in lightningd's words, never
  an internal error;
* lightningd's ``check`` (the manifest says ``cancheck``): the command's
  parameters are checked by the same function the command uses, and nothing
  else happens;
* a line from lightningd that is not JSON is logged (bounded) and skipped;
* what the plugin writes is always valid UTF-8 (a lone surrogate is written as its
  JSON escape), so no string can stop an answer (``barqstatus`` keeps answering).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable
from contextlib import suppress
from typing import IO, Any, TextIO, cast

from pyln.client import Plugin, RpcException
from pyln.client.plugin import PluginLogHandler, Request, RequestState, hook_fallbacks

from barq.errors import (
    MESSAGE_BYTES,
    PAY_UNSPECIFIED_ERROR,
    BarqError,
    InvalidParams,
    bounded,
    shown,
)
from barq.plugin.host import (
    EngineHost,
    NodeFactory,
    RuntimeFactory,
    default_node_factory,
    default_runtime_factory,
)
from barq.plugin.options import PluginConfig
from barq.plugin.results import rpc_error

__all__ = ["LOG_LINES", "BarqPlugin", "Check"]

#: the most lines one log message keeps (each line is bounded on its own)
LOG_LINES = 200

Check = Callable[..., Any]
"""A command's parameter check: the command's parameters (same names), raises or returns."""

_TYPE_ERRORS = (
    (re.compile(r"missing a required argument: '(\w+)'"), "missing required parameter: {}"),
    (re.compile(r"got an unexpected keyword argument '(\w+)'"), "unknown parameter: {}"),
    (re.compile(r"too many positional arguments"), "too many parameters"),
    (re.compile(r"multiple values for argument '(\w+)'"), "duplicate parameter: {}"),
)


def _param_error(method: str, exc: TypeError) -> InvalidParams:
    """A binding error in lightningd's words ("unknown parameter: x", ...)."""
    text = str(exc)
    for pattern, words in _TYPE_ERRORS:
        m = pattern.search(text)
        if m is not None:
            return InvalidParams(words.format(*m.groups()), data={"method": method})
    return InvalidParams(f"{method}: {text}", data={"method": method})


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
        #: command name -> its parameter check, for lightningd's ``check``
        self.checks: dict[str, Check] = {}

    def log(self, message: str, level: str = "info") -> None:
        """Log to lightningd, one notification per line, every line :func:`bounded`
        (at most :data:`LOG_LINES` lines)."""
        lines = str(message).split("\n")
        if len(lines) > LOG_LINES:
            lines = [*lines[:LOG_LINES], f"\u2026 ({len(lines) - LOG_LINES} more lines)"]
        for line in lines:
            self.notify("log", {"level": level, "message": bounded(line, MESSAGE_BYTES)})

    def _write_locked(self, obj: Any) -> None:
        """pyln's writer, but a string that is not valid Unicode (a lone surrogate that came
        from a caller or from lightningd) is written as its JSON escape instead of raising
        (pyln would fail the write, and the request would never be answered)."""
        data = (json.dumps(obj, ensure_ascii=False) + "\n\n").encode("utf-8", "backslashreplace")
        with self.write_lock:
            self.stdout.buffer.write(data)
            self.stdout.flush()

    def barq_log(self, message: str, level: str) -> None:
        """Log to lightningd; never raises (a log line must not break a command)."""
        with suppress(Exception):
            self.log(message, level=level)

    def _getmanifest(self, **kwargs: Any) -> Any:
        """pyln's manifest, plus ``cancheck``: lightningd may send ``check`` for our commands."""
        manifest = super()._getmanifest(**kwargs)
        manifest["cancheck"] = True
        return manifest

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
            method=str(jsrequest.get("method")),
            params=jsrequest.get("params", {}),
            origin=jsrequest.get("origin"),
            background=False,
        )

    def _multi_dispatch(self, msgs: list[bytes]) -> bytes:
        """pyln's, but a message that is not a JSON-RPC object is logged and skipped."""
        for payload in msgs[:-1]:
            try:
                jsrequest = json.loads(payload.decode("utf-8", "backslashreplace"))
                if not isinstance(jsrequest, dict):
                    raise ValueError(f"not a JSON object: {shown(jsrequest)}")
            except ValueError as exc:
                self.barq_log(
                    f"ignoring a message from lightningd that is not JSON-RPC: {exc}", "unusual"
                )
                continue
            request = self._parse_request(jsrequest)
            if request.id is not None:
                self._dispatch_request(request)
            else:
                self._dispatch_notification(request)
        return msgs[-1]

    def _exec_func(self, func: Callable[..., Any], request: Request) -> Any:
        if not isinstance(request.params, dict | list):
            raise InvalidParams(
                f"{request.method}: parameters must be a JSON object or array, got "
                f"{shown(request.params)}",
                data={"method": request.method},
            )
        return super()._exec_func(func, request)

    def _bind_pos(self, func: Callable[..., Any], params: list[Any], request: Request) -> Any:
        try:
            return super()._bind_pos(func, params, request)
        except TypeError as exc:
            raise _param_error(request.method, exc) from None

    def _bind_kwargs(
        self, func: Callable[..., Any], params: dict[str, Any], request: Request
    ) -> Any:
        try:
            return super()._bind_kwargs(func, params, request)
        except TypeError as exc:
            raise _param_error(request.method, exc) from None

    def _check(self, request: Request) -> dict[str, Any]:
        """lightningd's ``check``: run the command's parameter check; nothing else happens.

        Raises:
            InvalidParams: no ``command_to_check``, not a Barq command, or the
                command's own refusal of its parameters.
        """
        params = request.params
        name: Any = None
        if isinstance(params, dict):
            rest: Any = {k: v for k, v in params.items() if k != "command_to_check"}
            name = params.get("command_to_check")
        elif isinstance(params, list) and params:
            name, rest = params[0], params[1:]
        check = self.checks.get(name) if isinstance(name, str) else None
        if check is None:
            raise InvalidParams(
                f"check: command_to_check must be one of {', '.join(sorted(self.checks))}, "
                f"got {shown(name)}"
            )
        request.params = rest
        self._exec_func(check, request)
        return {"command_to_check": name}

    def _dispatch_request(self, request: Request) -> None:
        """pyln's dispatch, without a traceback in the log for Barq's own (expected) errors.

        (``request`` is injected as the handlers' *first* parameter: pyln
        inserts it at its index among positional params, so a later position
        would swallow a user argument when fewer are given.)
        """
        if request.method == "check":
            try:
                request.set_result(self._check(request))
            except Exception as exc:
                request.set_exception(exc)
            return
        method = self.methods.get(request.method)
        if method is None:
            request.set_exception(InvalidParams(f"unknown method {shown(request.method)}"))
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
    """pyln's Request, answering errors with ``data`` and Barq's code mapping; its
    ``message`` notifications are bounded."""

    state: RequestState
    termination_tb: str | None

    def notify(self, message: str, level: str = "info") -> None:
        super().notify(bounded(str(message)), level)

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
