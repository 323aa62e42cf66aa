"""The error tree carries CLN's pay codes."""

from __future__ import annotations

import pytest

from barq import errors


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.InvalidInvoice, -32602),
        (errors.UnknownStrategy, -32602),
        (errors.InvoiceExpired, 207),
        (errors.AlreadyPaid, 201),
        (errors.RouteNotFound, 205),
        (errors.RouteTooExpensive, 206),
        (errors.DestinationPermanentFailure, 203),
        (errors.StoppedRetrying, 210),
        (errors.BarqError, 209),
    ],
)
def test_codes(cls: type[errors.BarqError], code: int) -> None:
    e = cls("boom", data={"k": 1})
    assert e.code == code
    assert e.data == {"k": 1}
    assert isinstance(e, errors.BarqError)


def test_rpc_error_keeps_lightningd_code() -> None:
    e = errors.RpcError("no", method="sendpay", rpc_code=200, rpc_data={"x": 1})
    assert e.code == 200 and e.method == "sendpay" and e.rpc_data == {"x": 1}
    assert isinstance(e, errors.NodeError)
