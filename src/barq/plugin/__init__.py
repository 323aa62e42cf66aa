"""Barq's Core Lightning front end (pyln-client): the only plugin-facing package.

The rooms, in the order a request crosses them::

    options.py    init's options -> PluginConfig (ranges from barq.limits)
    params.py     one function per command: parameters -> clean values, or -32602
    commands.py   the command table: parse -> ask the engine -> shape (background methods)
    results.py    JSON shapes of results, notifications and errors (CLN's codes)
    redirect.py   the ``pay`` redirect (rpc_command hook, barq-handle-pay)
    host.py       the engine's thread and its lifecycle (EngineHost)
    app.py        the pyln plugin object (BarqPlugin): stdin loop, dispatch, error shape

No file here knows routing or a payment rule: joining a payment in flight,
"already paid", adopting parts after a restart and the restart reconciliation
are the engine's (:mod:`barq.actors.coordinator`, asking :mod:`barq.payment`);
the plugin only asks the engine (:class:`barq.actors.runtime.Runtime`).

Errors: a :class:`barq.errors.BarqError` becomes a JSON-RPC error with its
``code`` (CLN's ``pay`` codes: 205, 206, 207, 210, 203, 201, -32602...) and
its ``data``; the ``data`` of a payment failure is the payment in
:func:`~barq.plugin.results.payment_json` shape (every attempt, with route and
failure reason). Anything else becomes code 209 with the exception's message,
is logged with its traceback, and the plugin stays up.
"""

from __future__ import annotations

from barq.plugin.app import BarqPlugin
from barq.plugin.commands import PART_END_TOPIC, PART_START_TOPIC, build_plugin
from barq.plugin.host import EngineHost, RuntimeLike

__all__ = [
    "PART_END_TOPIC",
    "PART_START_TOPIC",
    "BarqPlugin",
    "EngineHost",
    "RuntimeLike",
    "build_plugin",
    "main",
]


def main() -> None:
    """``barq-plugin``: run as a Core Lightning plugin (prints usage outside lightningd)."""
    plugin = build_plugin()
    plugin.run()
