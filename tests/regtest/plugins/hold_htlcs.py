#!/usr/bin/env python3
"""Test plugin for the payee: holds incoming HTLCs while ``holdhtlcs on`` is set.

``holdhtlcs`` with ``on``/``off`` toggles holding; turning it off releases every
held HTLC (``continue``). ``failhtlcs`` fails every held HTLC (``mpp_timeout``,
as a payee that gave up waiting for the rest of the set) and stops holding.
``heldhtlcs`` tells how many are held. Used to keep a
payment in flight for barqstatus, restart and disconnect scenarios.
"""

from __future__ import annotations

import threading
from typing import Any

from pyln.client import Plugin
from pyln.client.plugin import Request

plugin = Plugin()
_lock = threading.Lock()
_held: list[Request] = []
_state = {"hold": True}


@plugin.async_hook("htlc_accepted")
def on_htlc_accepted(request: Request, **kwargs: Any) -> None:
    with _lock:
        if _state["hold"]:
            _held.append(request)
            return
    request.set_result({"result": "continue"})


@plugin.method("holdhtlcs")
def holdhtlcs(mode: str, **kwargs: Any) -> dict[str, Any]:
    """holdhtlcs on|off: hold incoming HTLCs, or release them all and stop holding."""
    with _lock:
        _state["hold"] = mode == "on"
        released = [] if _state["hold"] else list(_held)
        if not _state["hold"]:
            _held.clear()
    for r in released:
        r.set_result({"result": "continue"})
    return {"hold": _state["hold"], "released": len(released)}


@plugin.method("failhtlcs")
def failhtlcs(**kwargs: Any) -> dict[str, Any]:
    """failhtlcs: fail every held HTLC with mpp_timeout (0x0017) and stop holding."""
    with _lock:
        _state["hold"] = False
        failed = list(_held)
        _held.clear()
    for r in failed:
        r.set_result({"result": "fail", "failure_message": "0017"})
    return {"hold": False, "failed": len(failed)}


@plugin.method("heldhtlcs")
def heldhtlcs(**kwargs: Any) -> dict[str, Any]:
    """How many HTLCs are held now."""
    with _lock:
        return {"held": len(_held)}


plugin.run()
