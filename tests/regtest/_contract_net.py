"""Helpers of the contract and hostile suites (issue 12 items 2-5, issue 17 items 3-5, 7).

Every payer runs Barq with ``barq-handle-pay`` (and ``xpay-handle-pay=false``), so
one node answers both ``barqpay`` and a ``pay`` redirected to Barq: a scenario
runs once per way in (:data:`VIAS`) on the same network.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pyln.client import RpcError
from pyln.client.lightning import UnixSocket
from pyln.testing.utils import wait_for
from regtest_env import PLUGIN

#: the two ways a caller reaches Barq
VIAS = ("barqpay", "pay")

#: the payer's options: Barq serves barqpay and pay
PAYER = {"plugin": PLUGIN, "barq-handle-pay": True, "xpay-handle-pay": False}


def payer(**extra: Any) -> dict[str, Any]:
    return {**PAYER, **extra}


def invoice(node: Any, amount_msat: int | str, label: str, **kw: Any) -> str:
    """A bolt11 of ``node`` without route hints (deterministic routing)."""
    kw.setdefault("exposeprivatechannels", [])
    inv = node.rpc.invoice(amount_msat, label, f"barq contract {label}", **kw)
    return str(inv["bolt11"])


def pay(node: Any, via: str, bolt11: str, **kw: Any) -> dict[str, Any]:
    """Pay ``bolt11`` from ``node`` by ``barqpay`` or by ``pay`` (keyword form)."""
    key = "invstring" if via == "barqpay" else "bolt11"
    res: dict[str, Any] = node.rpc.call(via, {key: bolt11, **kw})
    return res


def refused(call: Callable[..., Any], *args: Any, **kw: Any) -> dict[str, Any]:
    """The JSON-RPC error object of ``call(*args, **kw)``, which must fail."""
    try:
        res = call(*args, **kw)
    except RpcError as exc:
        err: dict[str, Any] = exc.error
        return err
    raise AssertionError(f"expected an error, got {res!r}")


def timed_error(call: Callable[..., Any], *args: Any, **kw: Any) -> tuple[dict[str, Any], float]:
    """:func:`refused`, and how long the call took (seconds)."""
    t0 = time.monotonic()
    err = refused(call, *args, **kw)
    return err, time.monotonic() - t0


def sendpays(node: Any, payment_hash: str | None = None) -> list[dict[str, Any]]:
    kw = {} if payment_hash is None else {"payment_hash": payment_hash}
    out: list[dict[str, Any]] = node.rpc.listsendpays(**kw)["payments"]
    return out


def hash_of(node: Any, bolt11: str) -> str:
    return str(node.rpc.decode(bolt11)["payment_hash"])


def wait_gossip(node: Any, directions: int) -> None:
    wait_for(lambda: len(node.rpc.listchannels()["channels"]) >= directions, timeout=120)


def barq_alive(node: Any) -> None:
    """lightningd answers, Barq's commands are registered and ``barqstatus`` answers."""
    assert node.rpc.getinfo()["id"]
    names = {c["command"].split()[0] for c in node.rpc.help()["help"]}
    assert "barqpay" in names, "the Barq plugin is gone"
    st = node.rpc.call("barqstatus")
    assert st["engine"]["state"] == "running", st


def raw_call(node: Any, method: str, params: Any = None, *, body: bytes | None = None) -> Any:
    """One JSON-RPC request written as a hostile client would: ``ensure_ascii`` JSON (a lone
    surrogate travels as ``\\ud800``), or ``body`` as given. Returns the whole answer
    (``None`` when lightningd closed the connection without one)."""
    if body is None:
        request = {"jsonrpc": "2.0", "id": "hostile", "method": method, "params": params or {}}
        body = json.dumps(request).encode()
    sock = UnixSocket(node.rpc.socket_path)
    try:
        sock.sendall(body)
        buf = b""
        while b"\n\n" not in buf:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    finally:
        sock.close()
    text = buf.split(b"\n\n")[0].strip().decode("utf-8", "replace")
    return json.loads(text) if text else None
