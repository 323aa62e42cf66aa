"""The one exception tree of Barq.

Every error a caller can see is a :class:`BarqError`. Each class carries the
JSON-RPC code that Core Lightning's ``pay`` uses for the same condition
(``common/jsonrpc_errors.h``), so the plugin edge turns any of them into an
``RpcException(message, code)`` without a lookup table::

    BarqError (209 PAY_UNSPECIFIED_ERROR)
     ├── InvalidParams (-32602 JSONRPC2_INVALID_PARAMS)
     │    ├── InvalidInvoice            malformed bolt11, wrong network, missing amount
     │    └── UnknownStrategy           no strategy registered under that name
     ├── InvoiceExpired (207 PAY_INVOICE_EXPIRED)
     ├── AlreadyPaid (201 PAY_RHASH_ALREADY_USED)
     ├── PaymentInProgress (200 PAY_IN_PROGRESS)
     ├── RouteNotFound (205 PAY_ROUTE_NOT_FOUND)
     ├── RouteTooExpensive (206 PAY_ROUTE_TOO_EXPENSIVE)
     ├── DestinationPermanentFailure (203 PAY_DESTINATION_PERM_FAIL)
     ├── StoppedRetrying (210 PAY_STOPPED_RETRYING)  retry_for reached
     ├── NodeError (-1)                 the node (real or simulated) misbehaved
     │    ├── RpcError                  lightningd answered a JSON-RPC error
     │    │    └── PartFailed (204 PAY_TRY_OTHER_ROUTE)  waitsendpay reported a failed part
     │    └── RpcConnectionError        socket missing, refused or closed mid-call
     ├── GraphLoadError (-1)            missing/truncated/corrupt gossip source
     └── StoreError (-1)                database locked, unreadable or too new

``data`` is a JSON-serialisable dict that the plugin passes as the JSON-RPC
error's ``data`` (what was tried and why each attempt failed).

Every message is bounded (:func:`bounded`): at most :data:`MESSAGE_BYTES` of
UTF-8 with "… (N bytes)" when cut, lone surrogates and NUL escaped, so no
error and no log line built from one can grow with a caller's argument
(lightningd aborts on a log line over 256 KB). Show a caller's value in a
message with :func:`shown` (a short ``repr``).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "MESSAGE_BYTES",
    "AlreadyPaid",
    "BarqError",
    "DestinationPermanentFailure",
    "GraphLoadError",
    "InvalidInvoice",
    "InvalidParams",
    "InvoiceExpired",
    "NodeError",
    "PartFailed",
    "PaymentInProgress",
    "RouteNotFound",
    "RouteTooExpensive",
    "RpcConnectionError",
    "RpcError",
    "StoppedRetrying",
    "StoreError",
    "UnknownStrategy",
    "bounded",
    "shown",
]

# Codes from Core Lightning's common/jsonrpc_errors.h
JSONRPC2_INVALID_PARAMS = -32602
LIGHTNINGD = -1
PAY_IN_PROGRESS = 200
PAY_RHASH_ALREADY_USED = 201
PAY_UNPARSEABLE_ONION = 202
PAY_DESTINATION_PERM_FAIL = 203
PAY_TRY_OTHER_ROUTE = 204
PAY_ROUTE_NOT_FOUND = 205
PAY_ROUTE_TOO_EXPENSIVE = 206
PAY_INVOICE_EXPIRED = 207
PAY_NO_SUCH_PAYMENT = 208
PAY_UNSPECIFIED_ERROR = 209
PAY_STOPPED_RETRYING = 210


#: the most UTF-8 bytes a message (error or log line) keeps before it is cut
MESSAGE_BYTES = 2048
#: the most characters of a caller's value shown in a message (:func:`shown`)
SHOWN_CHARS = 64


def bounded(text: str, limit: int = MESSAGE_BYTES) -> str:
    """``text`` safe to log or put in an error: valid UTF-8, no NUL, at most ``limit`` bytes.

    Lone UTF-16 surrogates and NUL become backslash escapes; a text longer
    than ``limit`` bytes is cut and ends with ``"… (N bytes)"``, N its whole
    size. The result is at most ``limit`` bytes of UTF-8 (``limit`` >= 64).
    """
    raw = text.encode("utf-8", "backslashreplace").replace(b"\x00", b"\\x00")
    if len(raw) <= limit:
        return raw.decode("utf-8")
    tail = f"\u2026 ({len(raw)} bytes)"
    keep = raw[: max(0, limit - len(tail.encode()))].decode("utf-8", "ignore")
    return keep + tail


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A caller's ``value`` for a message: its ``repr``, cut after about ``limit`` characters
    (then followed by its full size)."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not break an error message
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = f"{text[: limit - 4]}... ({len(text)} chars)"
    return text


class BarqError(Exception):
    """Base of every Barq error.

    Args:
        message: human readable, one line, says what is wrong and where;
            kept :func:`bounded`.
        data: optional JSON-serialisable details (JSON-RPC error ``data``).
    """

    cln_code: ClassVar[int] = PAY_UNSPECIFIED_ERROR

    def __init__(self, message: str, *, data: dict[str, Any] | None = None) -> None:
        message = bounded(message)
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = dict(data or {})
        #: the JSON-RPC code when it is not the class's (xpay's 209 for a routing
        #: failure after attempts: the error keeps its class for Python callers)
        self.code_override: int | None = None

    @property
    def code(self) -> int:
        return self.cln_code if self.code_override is None else self.code_override


class InvalidParams(BarqError):
    cln_code = JSONRPC2_INVALID_PARAMS


class InvalidInvoice(InvalidParams):
    """The invoice string cannot be used: malformed, other network, no amount..."""


class UnknownStrategy(InvalidParams):
    """No routing strategy is registered under the requested name."""


class InvoiceExpired(BarqError):
    cln_code = PAY_INVOICE_EXPIRED


class AlreadyPaid(BarqError):
    cln_code = PAY_RHASH_ALREADY_USED


class PaymentInProgress(BarqError):
    cln_code = PAY_IN_PROGRESS


class RouteNotFound(BarqError):
    cln_code = PAY_ROUTE_NOT_FOUND


class RouteTooExpensive(BarqError):
    cln_code = PAY_ROUTE_TOO_EXPENSIVE


class DestinationPermanentFailure(BarqError):
    cln_code = PAY_DESTINATION_PERM_FAIL


class StoppedRetrying(BarqError):
    cln_code = PAY_STOPPED_RETRYING


class NodeError(BarqError):
    cln_code = LIGHTNINGD


class RpcError(NodeError):
    """lightningd answered a JSON-RPC call with an error object.

    Attributes:
        method: the RPC method called.
        rpc_code: the ``code`` lightningd returned.
        rpc_data: the ``data`` lightningd returned (may be empty).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        rpc_code: int = LIGHTNINGD,
        rpc_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, data=rpc_data)
        self.method = method
        self.rpc_code = rpc_code
        self.rpc_data: dict[str, Any] = dict(rpc_data or {})

    @property
    def code(self) -> int:
        return self.rpc_code


class PartFailed(RpcError):
    """A sent part failed (``waitsendpay`` 204/203 or the simulator's equivalent).

    Attributes:
        failure: the parsed :class:`barq.model.RouteFailure`.
    """

    cln_code = PAY_TRY_OTHER_ROUTE

    def __init__(
        self,
        message: str,
        *,
        failure: Any,
        method: str = "waitsendpay",
        rpc_code: int = PAY_TRY_OTHER_ROUTE,
        rpc_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, method=method, rpc_code=rpc_code, rpc_data=rpc_data)
        self.failure = failure


class RpcConnectionError(NodeError):
    """The RPC socket is missing, refused the connection or closed mid-call."""


class GraphLoadError(BarqError):
    cln_code = LIGHTNINGD


class StoreError(BarqError):
    cln_code = LIGHTNINGD
