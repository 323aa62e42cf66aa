"""Side-by-side regtest benchmark: ``barqpay`` (each strategy) vs CLN ``pay``/``xpay``/``renepay``.

Run::

    python benchmarks/regtest_bench.py [--sizes 50000,250000,...] [--rounds N] [--json OUT]
    nox -s regtest_bench -- --rounds 2

Binaries are found like the regtest suite finds them (``tests/regtest/regtest_env.py``): ``PATH``,
with ``BARQ_REGTEST_PATH`` (colon-separated directories) prepended.  When ``lightningd``,
``bitcoind`` or ``bitcoin-cli`` is missing the script prints one ``skipped: ...`` line and exits 0.
Bitcoin Knots is started with ``-rejectparasites=0`` (only when the ``bitcoind`` is Knots).

Topology (7 nodes; ``P`` pays, ``Z`` is paid; ``A``..``E`` forward).  Each channel is opened by its
first node with a push of part of it to the second node; "spendable" is what ``listpeerchannels``
reports on the funder's side after reserve and commitment fees::

    channel  capacity  push  spendable        forwarding fees (base msat / ppm)
    P-A       3.0M      5%   2.81M            A:    0 / 10    (cheapest)
    P-B       3.0M      5%   2.81M            B:  500 / 300
    P-C       3.0M      5%   2.81M            C: 1000 / 2000  (dearest)
    A-Z       1.0M     95%     29k (drained)  D:  100 / 100
    A-D       2.0M      5%   1.87M            E:  200 / 200
    D-Z       1.5M     60%    574k (drained)
    B-Z       1.0M     70%    279k (drained)
    B-E       1.2M      5%   1.12M
    E-Z       1.2M      5%   1.12M
    C-Z       1.0M      5%    929k
    D-E       1.0M     50%    479k

Routes by cost: P-A-Z (drained: fails above ~29k), P-A-D-Z (574k), P-B-Z (279k),
P-A-D-E-Z, P-B-E-Z (the largest single path, ~1.12M), P-C-Z (929k, dearest).  The maximum flow
P->Z is about 2.93M sat.  Default sizes (sat): 50k and 250k (the cheapest route fails), 800k (one
path, not a cheap one), 1.5M and 2.2M (need MPP over 2 and 3+ paths; 2.2M is 75% of the maximum
flow).  Channels are announced; invoices have ``exposeprivatechannels=[]`` (no route hints).

Fairness (every method faces the same state):

* **A fresh, identical network per method.**  Channels are opened in the same order with the same
  capacities and pushes, and the node keys are the same (pyln derives them from the node's
  directory name), so only the short channel ids differ.  The payer is therefore a fresh node for
  every method: its knowledge is cold (gossip only, nothing learnt about liquidity).  Only the
  payer's options differ: ``plugin=barq-plugin`` for Barq (``--plugin`` picks another
  executable); ``xpay-handle-pay=false`` plus ``allow-deprecated-apis=true`` for legacy ``pay``;
  ``allow-deprecated-apis=true`` for ``renepay`` (deprecated in v26.06).  The payer gets them by a
  restart once the network's gossip is complete, so every payment plugin starts on a node that
  already knows the whole graph (as on a real node; Barq reads the graph when it starts).
* **Balances are restored after every payment.**  Within a method the payments run in the same
  order (rounds x sizes); after each successful payment its successful parts are traced hop by hop
  (the payee's ``listhtlcs`` and the forwarders' ``listforwards``, chained by HTLC ids) and the
  payee sends the same amounts back over the exact reversed routes (``sendpay`` with explicit
  routes), so each payment starts from the initial balances (off by the forwarding fees only; the
  largest drift seen is printed).
* **Payer knowledge.**  By default what the payer learnt from earlier payments is kept, as on a
  real node: learning is part of the method.  Note that the restoration refills exactly the
  channels the payment drained, so a method that remembers "I drained this channel" is wrong
  afterwards (on a real network other traffic does the same, more slowly).  With ``--cold`` the
  payer forgets after every payment (restart; askrene's persisted layers, i.e. xpay's learnt
  constraints, and Barq's database are deleted), so every payment of every method starts from
  the very same state: the initial balances and a payer that knows only the gossip (the next
  payment starts 2 s after the payer is back, so start-up work is not timed).
* The same ``retry_for`` and ``maxfee`` (0.5% + 5 sat, ``pay``'s default budget) for every call.
  Wall time is measured around the RPC call (a plain ``pyln.client.LightningRpc``, without
  pyln-testing's extra ``check`` request) in this process; before each payment the network is
  quiescent (no HTLC in any channel).  Part counts are read once every part has resolved (xpay
  answers as soon as it holds the preimage).

Columns: ``ok`` successful payments / payments; ``med s``/``p90 s`` wall time over all payments
(time to a final answer, success or failure), ``med ok s`` over successful ones; ``parts`` the mean
number of successful parts per successful payment and ``attempts`` the mean number of ``sendpay``
parts per payment (both from the payer's ``listsendpays``); fees are over successful payments.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

# --------------------------------------------------------------------------- environment

_extra = os.environ.get("BARQ_REGTEST_PATH")
if _extra:
    os.environ["PATH"] = _extra + os.pathsep + os.environ.get("PATH", "")
for _k, _v in {
    "VALGRIND": "0",
    "TEST_NETWORK": "regtest",
    "SLOW_MACHINE": "1",
    "TEST_DEBUG": "0",
}.items():
    os.environ.setdefault(_k, _v)

MISSING = [b for b in ("lightningd", "bitcoind", "bitcoin-cli") if shutil.which(b) is None]
#: the Barq plugin executable (``--plugin`` overrides it)
PLUGIN = str(Path(sys.executable).parent / "barq-plugin")


def _lightningd_has_rust_plugins() -> bool:
    exe = shutil.which("lightningd")
    if exe is None:
        return False
    libexec = Path(exe).resolve().parent.parent / "libexec" / "c-lightning" / "plugins"
    return (libexec / "cln-grpc").exists()


if not MISSING:
    # pyln-testing checks RUST == "0" literally; a build without Rust plugins rejects --grpc-port.
    os.environ.setdefault("RUST", "1" if _lightningd_has_rust_plugins() else "0")

# --------------------------------------------------------------------------- topology

NODES: tuple[str, ...] = ("P", "A", "B", "C", "D", "E", "Z")
PAYER, PAYEE = "P", "Z"
#: forwarding fees per node: (fee-base msat, fee-per-satoshi ppm)
NODE_FEES: dict[str, tuple[int, int]] = {
    "A": (0, 10),
    "B": (500, 300),
    "C": (1000, 2000),
    "D": (100, 100),
    "E": (200, 200),
}
#: (funder, fundee, capacity sat, push sat) in opening order
CHANNELS: tuple[tuple[str, str, int, int], ...] = (
    ("P", "A", 3_000_000, 150_000),
    ("P", "B", 3_000_000, 150_000),
    ("P", "C", 3_000_000, 150_000),
    ("A", "Z", 1_000_000, 950_000),
    ("A", "D", 2_000_000, 100_000),
    ("D", "Z", 1_500_000, 900_000),
    ("B", "Z", 1_000_000, 700_000),
    ("B", "E", 1_200_000, 60_000),
    ("E", "Z", 1_200_000, 60_000),
    ("C", "Z", 1_000_000, 50_000),
    ("D", "E", 1_000_000, 500_000),
)
UTXO_SAT = 3_300_000  # one wallet output per channel, each big enough for any channel
DEFAULT_SIZES_SAT = (50_000, 250_000, 800_000, 1_500_000, 2_200_000)
COLD_SETTLE_S = 2.0  # --cold: pause after the payer's restart, so timings measure paying
BARQ_STRATEGIES = (
    "dijkstra",
    "probabilistic",
    "mincostflow",
    "cheapflow",
    "singlepath",
    "presplit",
)


class Method(msgspec.Struct, frozen=True, kw_only=True):
    """One way of paying: an RPC command on the payer plus the payer's lightningd options."""

    name: str
    command: str
    strategy: str | None = None
    payer_opts: dict[str, Any] = {}


def all_methods(plugin: str = PLUGIN) -> list[Method]:
    """Every method in table order: CLN's three, then barqpay with each built-in strategy."""
    out = [
        Method(
            name="pay",
            command="pay",
            payer_opts={"xpay-handle-pay": "false", "allow-deprecated-apis": "true"},
        ),
        Method(name="xpay", command="xpay"),
        Method(name="renepay", command="renepay", payer_opts={"allow-deprecated-apis": "true"}),
    ]
    out += [
        Method(name=f"barq:{s}", command="barqpay", strategy=s, payer_opts={"plugin": plugin})
        for s in BARQ_STRATEGIES
    ]
    return out


class PaymentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One measured payment."""

    method: str
    round: int
    amount_msat: int
    ok: bool
    wall_s: float
    parts: int  # successful sendpay parts
    attempts: int  # all sendpay parts (listsendpays)
    fee_msat: int | None  # amount sent - amount delivered, successful payments only
    error: str | None = None
    restored: bool = True


class MethodSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the table."""

    method: str
    ok: int
    total: int
    median_s: float | None
    p90_s: float | None
    median_ok_s: float | None
    parts_per_ok: float | None
    attempts_per_payment: float | None
    fee_sum_msat: int
    fee_median_msat: float | None
    build_s: float
    max_drift_msat: int
    unavailable: str | None = None


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """What ``--json`` writes."""

    lightningd: str
    bitcoind: str
    sizes_sat: list[int]
    rounds: int
    retry_for: int
    cold: bool
    summaries: list[MethodSummary]
    payments: list[PaymentRecord]


# --------------------------------------------------------------------------- helpers


def p90(values: Sequence[float]) -> float:
    """Nearest-rank 90th percentile of a non-empty sequence."""
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def maxfee_msat(amount_msat: int) -> int:
    """The fee budget given to every method: 0.5% + 5 sat (legacy ``pay``'s default)."""
    return amount_msat // 200 + 5_000


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def quiet_node(node: Any) -> None:
    """Before start: log to the node's log file only, and do not save plugin I/O.

    pyln-testing also logs to stdout (which would flood the table) and records every plugin
    JSON message (``dev-save-plugin-io``), a cost that is not part of any payment method.
    """
    node.daemon.opts["log-file"] = str(Path(node.daemon.lightning_dir) / "log")
    # (and the caller starts it with stderr_redir=True: plugins' stderr goes to errlog)
    node.daemon.opts.pop("dev-save-plugin-io", None)


class Harness:
    """One bitcoind plus, per method, a fresh 7-node network (pyln-testing objects).

    Args:
        base_dir: scratch directory for bitcoind and the nodes (removed by the caller).
        verbose: print progress lines to stderr.
    """

    def __init__(self, base_dir: Path, verbose: bool) -> None:
        from pyln.testing import utils as pu

        self.pu = pu
        self.base_dir = base_dir
        self.verbose = verbose
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=20)
        self.is_knots = "Knots" in _version(["bitcoind", "-version"])
        self.bitcoind: Any = pu.BitcoinD(bitcoin_dir=str(base_dir / "bitcoind"))
        if self.is_knots:
            # Knots rejects nLockTime-21 transactions ("parasite-cat21"), which lightningd may
            # pick as a funding locktime on a short regtest chain.
            self.bitcoind.cmd_line.append("-rejectparasites=0")
        self.bitcoind.start()
        self.bitcoind.generate_block(101)
        self.factories: list[Any] = []

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def factory(self, name: str) -> Any:
        from pyln.testing.db import SqliteDbProvider

        directory = self.base_dir / name
        directory.mkdir(parents=True, exist_ok=True)
        db = SqliteDbProvider(str(directory))
        db.start()
        nf = self.pu.NodeFactory(
            None,
            name,
            self.bitcoind,
            self.executor,
            directory=str(directory),
            db_provider=db,
            node_cls=self.pu.LightningNode,
            jsonschemas={},
        )
        self.factories.append(nf)
        return nf

    def stop_nodes(self, nf: Any) -> None:
        """Stop every node of a factory (in parallel); errors are ignored."""

        def _stop(n: Any) -> None:
            try:
                n.stop()
            except Exception:
                with contextlib.suppress(Exception):
                    n.daemon.stop()

        list(self.executor.map(_stop, nf.nodes))
        nf.nodes = []

    def close(self) -> None:
        for nf in self.factories:
            self.stop_nodes(nf)
        try:
            self.bitcoind.stop()
        except Exception:
            with contextlib.suppress(Exception):
                self.bitcoind.proc.kill()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------- preflight

    def barq_preflight(self, plugin: str) -> str | None:
        """Start a node with ``plugin``: None when ``barqpay`` is registered, else why not.

        The reason quotes the node's log lines about the plugin and the plugin's stderr
        (a traceback, typically).
        """
        if not Path(plugin).exists():
            return f"{plugin} does not exist"
        nf = self.factory("preflight")
        node: Any = None

        def evidence() -> str:
            if node is None:
                return ""
            d = Path(node.daemon.lightning_dir)
            out: list[str] = []
            log = d / "log"
            if log.exists():
                out += [
                    ln.split(" ", 2)[-1]
                    for ln in log.read_text().splitlines()
                    if "barq" in ln.lower()
                    and ("UNUSUAL" in ln or "BROKEN" in ln or "Killing" in ln or "INFO" in ln)
                ][-6:]
            err = d / "errlog"
            if err.exists():
                out += [ln for ln in err.read_text().splitlines() if ln.strip()][-12:]
            return " | ".join(out)

        try:
            node = nf.get_node(
                options={"plugin": plugin, "log-level": "debug"},
                may_fail=True,
                allow_warning=True,
                broken_log=".*",
                start=False,
            )
            quiet_node(node)
            node.start(stderr_redir=True)
            names = {c["command"].split()[0] for c in node.rpc.help()["help"]}
            if "barqpay" in names:
                return None
            time.sleep(0.5)  # let the plugin's stderr reach the file
            return "barqpay not registered: " + evidence()
        except Exception as exc:
            return f"node with {plugin} failed to start: {exc!r}: {evidence()}"
        finally:
            self.stop_nodes(nf)

    # ---------------------------------------------------------------- network

    def build(self, name: str, payer_opts: dict[str, Any]) -> Network:
        """A fresh copy of the benchmark topology; the payer gets ``payer_opts``."""
        pu = self.pu
        nf = self.factory(name)
        opts: list[dict[str, Any]] = []
        for n in NODES:
            o: dict[str, Any] = {"log-level": "debug", "allow_warning": True, "may_reconnect": True}
            if n in NODE_FEES:
                o["fee-base"], o["fee-per-satoshi"] = NODE_FEES[n]
            opts.append(o)
        started = nf.get_nodes(len(NODES), opts=[{**o, "start": False} for o in opts])
        for n in started:
            quiet_node(n)
        list(self.executor.map(lambda n: n.start(stderr_redir=True), started))
        nodes = dict(zip(NODES, started, strict=True))
        btc = self.bitcoind
        addrs: dict[str, float] = {}
        for f, t, _cap, _push in CHANNELS:
            nodes[f].rpc.connect(nodes[t].info["id"], "localhost", nodes[t].port)
            addrs[nodes[f].rpc.newaddr("bech32")["bech32"]] = UTXO_SAT / 10**8
        btc.rpc.sendmany("", addrs)
        btc.generate_block(1)
        pu.sync_blockheight(btc, list(nodes.values()))
        need = {f: sum(1 for c in CHANNELS if c[0] == f) for f, *_ in CHANNELS}
        for f, k in need.items():
            pu.wait_for(
                lambda f=f, k=k: (
                    sum(
                        1 for o in nodes[f].rpc.listfunds()["outputs"] if o["status"] == "confirmed"
                    )
                    >= k
                )
            )
        txids = [
            nodes[f].rpc.fundchannel(nodes[t].info["id"], cap, push_msat=push * 1000)["txid"]
            for f, t, cap, push in CHANNELS
        ]
        btc.generate_block(6, wait_for_mempool=txids)
        pu.sync_blockheight(btc, list(nodes.values()))
        for f, t, _cap, _push in CHANNELS:
            pu.wait_for(lambda f=f, t=t: nodes[f].channel_state(nodes[t]) == "CHANNELD_NORMAL")
        payer = nodes[PAYER]
        want = 2 * len(CHANNELS)

        def gossip_complete() -> bool:
            chans = payer.rpc.listchannels()["channels"]
            return sum(1 for c in chans if c["active"]) >= want and sum(
                1 for n in payer.rpc.listnodes()["nodes"] if "alias" in n
            ) >= len(NODES)

        pu.wait_for(gossip_complete)
        net = Network(self, nf, nodes)
        # Restart the payer with the method's options: its payment plugin then starts on a node
        # whose gossip is complete, as on a real node (Barq loads the graph when it starts).
        net.restart_payer(payer_opts)
        return net


class Network:
    """A running copy of the topology: payment, tracing and balance restoration helpers."""

    def __init__(self, harness: Harness, nf: Any, nodes: dict[str, Any]) -> None:
        self.h = harness
        self.nf = nf
        self.nodes = nodes
        self.ids = {n: nodes[n].info["id"] for n in NODES}
        self.name_of = {v: k for k, v in self.ids.items()}
        # scid -> the two node names
        self.ends: dict[str, tuple[str, str]] = {}
        for f, t, _c, _p in CHANNELS:
            chans = nodes[f].rpc.listpeerchannels(self.ids[t])["channels"]
            self.ends[chans[0]["short_channel_id"]] = (f, t)
        # (scid, source node id) -> (fee base msat, ppm, cltv delta)
        self.policy: dict[tuple[str, str], tuple[int, int, int]] = {}
        for c in nodes[PAYER].rpc.listchannels()["channels"]:
            self.policy[(c["short_channel_id"], c["source"])] = (
                int(c["base_fee_millisatoshi"]),
                int(c["fee_per_millionth"]),
                int(c["delay"]),
            )
        self.initial = self.balances()
        self.restore_seq = 0

    def stop(self) -> None:
        self.h.stop_nodes(self.nf)

    def dead_nodes(self) -> str:
        """Which nodes have exited, with the tail of their stderr and BROKEN log lines."""
        out = []
        for name, n in self.nodes.items():
            proc = n.daemon.proc
            if proc is None or proc.poll() is None:
                continue
            d = Path(n.daemon.lightning_dir)
            tail: list[str] = []
            if (d / "errlog").exists():
                tail += [ln for ln in (d / "errlog").read_text().splitlines() if ln.strip()][-6:]
            if (d / "log").exists():
                tail += [ln for ln in (d / "log").read_text().splitlines() if "BROKEN" in ln][-6:]
            out.append(f"node {name} exited rc={proc.returncode}: " + " | ".join(tail))
        return "; ".join(out) or "no node exited"

    def gossip_complete(self) -> bool:
        """The payer sees every channel direction active and every node announced."""
        payer = self.nodes[PAYER]
        chans = payer.rpc.listchannels()["channels"]
        return sum(1 for c in chans if c["active"]) >= 2 * len(CHANNELS) and sum(
            1 for n in payer.rpc.listnodes()["nodes"] if "alias" in n
        ) >= len(NODES)

    def restart_payer(self, opts: dict[str, Any] | None = None, *, wipe: bool = False) -> None:
        """Restart the payer (with ``opts`` added); wait until its channels and gossip are back.

        Args:
            opts: lightningd options to add before starting again.
            wipe: forget what payments taught the payer: askrene's persisted layers (xpay's
                learnt constraints) are deleted from the datastore before the stop and Barq's
                database (``barq*`` in the network directory) after it; ``pay`` and ``renepay``
                keep theirs in memory only.
        """
        payer = self.nodes[PAYER]
        if wipe:
            self._delete_datastore(["askrene", "layers"])
        payer.stop()
        if opts:
            payer.daemon.opts.update(opts)
        if wipe:
            netdir = Path(payer.daemon.lightning_dir) / self.h.pu.TEST_NETWORK
            for f in netdir.glob("barq*"):
                f.unlink()
        payer.start(stderr_redir=True)
        self.h.pu.wait_for(
            lambda: all(
                c["peer_connected"] and c["state"] == "CHANNELD_NORMAL"
                for c in payer.rpc.listpeerchannels()["channels"]
            )
        )
        self.h.pu.wait_for(self.gossip_complete)
        if wipe:
            try:
                layers = payer.rpc.call("askrene-listlayers")["layers"]
            except Exception:
                layers = []
            stale = [la["layer"] for la in layers if la.get("constraints") or la.get("biases")]
            if stale:
                raise RuntimeError(f"askrene layers still hold learnt data after wipe: {stale}")

    def _delete_datastore(self, key: list[str]) -> None:
        """Delete every datastore entry at or under ``key`` on the payer."""
        rpc = self.nodes[PAYER].rpc
        for e in rpc.listdatastore(key)["datastore"]:
            k = e["key"]
            if k != key:  # a child (listed without its data): descend
                self._delete_datastore(k)
            elif "generation" in e or "hex" in e:
                rpc.deldatastore(k)

    def other_end(self, scid: str, name: str) -> str:
        a, b = self.ends[scid]
        return b if a == name else a

    def balances(self) -> dict[str, int]:
        """Funder-side ``to_us_msat`` of every channel."""
        out: dict[str, int] = {}
        for f, t, _c, _p in CHANNELS:
            ch = self.nodes[f].rpc.listpeerchannels(self.ids[t])["channels"][0]
            out[ch["short_channel_id"]] = int(ch["to_us_msat"])
        return out

    def max_drift_msat(self) -> int:
        now = self.balances()
        return max(abs(now[k] - v) for k, v in self.initial.items())

    def wait_quiescent(self, timeout: float = 60) -> None:
        """Until no channel of any node carries an HTLC."""

        def idle() -> bool:
            return all(
                not ch.get("htlcs")
                for n in self.nodes.values()
                for ch in n.rpc.listpeerchannels()["channels"]
            )

        self.h.pu.wait_for(idle, timeout=timeout)

    # ---------------------------------------------------------------- paying

    def pay(
        self,
        method: Method,
        amount_msat: int,
        label: str,
        retry_for: int,
        round_no: int,
        *,
        cold: bool = False,
    ) -> PaymentRecord:
        """Pay a fresh invoice of ``amount_msat`` from the payer with ``method``, then restore."""
        from pyln.client import LightningRpc

        payer, payee = self.nodes[PAYER], self.nodes[PAYEE]
        bolt11 = payee.rpc.invoice(amount_msat, label, f"bench {label}", exposeprivatechannels=[])[
            "bolt11"
        ]
        payment_hash = payer.rpc.decode(bolt11)["payment_hash"]
        params: dict[str, Any] = {"retry_for": retry_for, "maxfee": maxfee_msat(amount_msat)}
        if method.command == "pay":
            params["bolt11"] = bolt11
        else:
            params["invstring"] = bolt11
        if method.strategy is not None:
            params["strategy"] = method.strategy
        self.wait_quiescent()
        # a plain client: pyln-testing's would first send a `check` request for every call
        rpc = LightningRpc(payer.rpc.socket_path)
        fut = self.h.executor.submit(rpc.call, method.command, params)
        t0 = time.monotonic()
        error: str | None = None
        result: dict[str, Any] = {}
        try:
            result = fut.result(timeout=retry_for + 90)
        except concurrent.futures.TimeoutError:
            error = f"no answer within {retry_for + 90}s"
        except Exception as exc:
            err = getattr(exc, "error", None)
            msg = f"{err.get('code')}: {err.get('message')}" if isinstance(err, dict) else repr(exc)
            for name, nid in self.ids.items():  # node ids -> names, for a readable table
                msg = msg.replace(nid, name).replace(nid[:16], name)
            error = msg[:200]
        wall = time.monotonic() - t0
        # xpay answers as soon as a preimage is known: let the other parts settle before counting
        self.wait_quiescent()
        self.h.pu.wait_for(
            lambda: (
                not any(
                    p["status"] == "pending"
                    for p in payer.rpc.listsendpays(payment_hash=payment_hash)["payments"]
                )
            ),
            timeout=60,
        )
        paid = payee.rpc.listinvoices(label)["invoices"][0]["status"] == "paid"
        ok = error is None and paid
        if error is None and not paid:
            error = f"command returned status={result.get('status')!r} but invoice not paid"
        sendpays = payer.rpc.listsendpays(payment_hash=payment_hash)["payments"]
        done = [p for p in sendpays if p["status"] == "complete"]
        attempts, parts = len(sendpays), len(done)
        fee: int | None = None
        if ok:
            if done:
                fee = sum(int(p["amount_sent_msat"]) - int(p["amount_msat"]) for p in done)
            elif "amount_sent_msat" in result:
                fee = int(result["amount_sent_msat"]) - amount_msat
        if not sendpays and "successful_parts" in result:  # in case xpay's parts are not listed
            parts = int(result["successful_parts"])
            attempts = parts + int(result.get("failed_parts", 0))
        restored = True
        if ok:
            try:
                self.restore(payment_hash)
            except Exception as exc:
                restored = False
                self.h.log(f"  restore failed after {label}: {exc!r}")
        if cold:
            self.restart_payer(wipe=True)
            time.sleep(COLD_SETTLE_S)  # let the restarted node finish reconnecting and syncing
        return PaymentRecord(
            method=method.name,
            round=round_no,
            amount_msat=amount_msat,
            ok=ok,
            wall_s=round(wall, 4),
            parts=parts,
            attempts=attempts,
            fee_msat=fee,
            error=error,
            restored=restored,
        )

    # ---------------------------------------------------------------- restoring

    def trace_parts(self, payment_hash: str) -> list[tuple[list[tuple[str, str]], int]]:
        """The successful parts of a payment as (hops from the payee back to the payer, delivered).

        Each hop is (channel scid, name of the node at the payer-side end).  A part is followed
        from the payee's incoming HTLC back through the forwarders' settled ``listforwards``
        entries, matching (out_channel, out_htlc_id) to the HTLC one step closer to the payee.
        """
        payee = self.nodes[PAYEE]
        settled: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
        for n in NODES:
            if n in (PAYER, PAYEE):
                continue
            fw = self.nodes[n].rpc.listforwards(status="settled")["forwards"]
            settled[n] = {
                (f["out_channel"], int(f["out_htlc_id"])): f for f in fw if "out_htlc_id" in f
            }
        parts: list[tuple[list[tuple[str, str]], int]] = []
        for htlc in payee.rpc.listhtlcs()["htlcs"]:
            if htlc.get("payment_hash") != payment_hash or htlc["direction"] != "in":
                continue
            scid, hid = htlc["short_channel_id"], int(htlc["id"])
            node = self.other_end(scid, PAYEE)
            hops = [(scid, node)]
            while node != PAYER:
                f = settled[node].get((scid, hid))
                if f is None:
                    break  # this HTLC was not settled: a failed part
                scid, hid = f["in_channel"], int(f["in_htlc_id"])
                node = self.other_end(scid, node)
                hops.append((scid, node))
            else:
                parts.append((hops, int(htlc["amount_msat"])))
        return parts

    def restore(self, payment_hash: str) -> None:
        """Send the payment's successful parts back along their exact reversed routes.

        Raises:
            RuntimeError: when a part cannot be traced or sent back.
        """
        parts = self.trace_parts(payment_hash)
        if not parts:
            raise RuntimeError(f"no settled part of {payment_hash} found")
        payer, payee = self.nodes[PAYER], self.nodes[PAYEE]
        total = sum(d for _, d in parts)
        self.restore_seq += 1
        label = f"restore-{self.restore_seq}"
        inv = payer.rpc.invoice(total, label, label, exposeprivatechannels=[])
        dec = payer.rpc.decode(inv["bolt11"])
        final_cltv = int(dec.get("min_final_cltv_expiry", 18))
        for partid, (hops, delivered) in enumerate(parts, start=1):
            route: list[dict[str, Any]] = []
            amount, delay = delivered, final_cltv
            # hops[i] = (scid, node at its payer-side end); build from the payer end backwards
            for i in range(len(hops) - 1, -1, -1):
                scid, node = hops[i]
                route.append(
                    {"id": self.ids[node], "channel": scid, "amount_msat": amount, "delay": delay}
                )
                if i > 0:  # hops[i-1]'s payer-side node forwards over scid
                    src = self.ids[hops[i - 1][1]]
                    base, ppm, cltv = self.policy[(scid, src)]
                    amount += base + amount * ppm // 1_000_000
                    delay += cltv
            route.reverse()
            payee.rpc.sendpay(
                route,
                inv["payment_hash"],
                amount_msat=total,
                payment_secret=dec["payment_secret"],
                partid=partid,
                groupid=1,
                bolt11=inv["bolt11"],
            )
        for partid in range(1, len(parts) + 1):
            payee.rpc.waitsendpay(inv["payment_hash"], timeout=60, partid=partid, groupid=1)
        self.wait_quiescent()


# --------------------------------------------------------------------------- table


def summarize(
    method: str,
    records: list[PaymentRecord],
    build_s: float,
    drift: int,
    unavailable: str | None = None,
) -> MethodSummary:
    walls = [r.wall_s for r in records]
    oks = [r for r in records if r.ok]
    fees = [r.fee_msat for r in oks if r.fee_msat is not None]
    return MethodSummary(
        method=method,
        ok=len(oks),
        total=len(records),
        median_s=statistics.median(walls) if walls else None,
        p90_s=p90(walls) if walls else None,
        median_ok_s=statistics.median([r.wall_s for r in oks]) if oks else None,
        parts_per_ok=statistics.fmean([r.parts for r in oks]) if oks else None,
        attempts_per_payment=statistics.fmean([r.attempts for r in records]) if records else None,
        fee_sum_msat=sum(fees),
        fee_median_msat=statistics.median(fees) if fees else None,
        build_s=round(build_s, 1),
        max_drift_msat=drift,
        unavailable=unavailable,
    )


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render(
    summaries: list[MethodSummary], records: list[PaymentRecord], sizes_sat: list[int]
) -> str:
    head = (
        f"{'method':<20} {'ok':>7} {'med s':>7} {'p90 s':>7} {'med ok s':>8} "
        f"{'parts':>6} {'attempts':>8} {'fee sum sat':>12} {'fee med msat':>12}"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        if s.unavailable is not None and s.total == 0:
            lines.append(f"{s.method:<20} unavailable (see below)")
            continue
        lines.append(
            f"{s.method:<20} {f'{s.ok}/{s.total}':>7} {_f(s.median_s, '.3f'):>7} "
            f"{_f(s.p90_s, '.3f'):>7} {_f(s.median_ok_s, '.3f'):>8} "
            f"{_f(s.parts_per_ok, '.2f'):>6} {_f(s.attempts_per_payment, '.2f'):>8} "
            f"{s.fee_sum_msat / 1000:>12.3f} {_f(s.fee_median_msat, '.0f'):>12}"
        )
    # per size: ok count and median wall time
    lines.append("")
    cols = "".join(f"{f'{sz:,} sat':>20}" for sz in sizes_sat)
    lines.append(f"{'per size (ok, med s)':<20}{cols}")
    for s in summaries:
        if s.total == 0:
            continue
        cells = []
        for sz in sizes_sat:
            rs = [r for r in records if r.method == s.method and r.amount_msat == sz * 1000]
            ok = sum(r.ok for r in rs)
            med = statistics.median([r.wall_s for r in rs]) if rs else None
            cell = f"{ok}/{len(rs)} {_f(med, '.2f')}s"
            cells.append(f"{cell:>20}")
        lines.append(f"{s.method:<20}" + "".join(cells))
    errs = [r for r in records if r.error]
    if errs:
        lines.append("")
        lines.append("failures:")
        seen: set[tuple[str, str]] = set()
        for r in errs:
            key = (r.method, r.error or "")
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"  {r.method} {r.amount_msat // 1000:,} sat: {r.error}")
    for reason in dict.fromkeys(s.unavailable for s in summaries if s.unavailable is not None):
        names = ", ".join(s.method for s in summaries if s.unavailable == reason)
        lines.append("")
        lines.append(f"problem ({names}): {reason}")
    for r in records:
        if r.ok and not r.restored:
            lines.append(
                f"warning: balances not restored after {r.method} "
                f"{r.amount_msat // 1000:,} sat (round {r.round}): later payments of "
                "this method saw a different state"
            )
    lines.append("")
    lines.append(
        "network build s / largest balance drift after restoring, sat: "
        + ", ".join(
            f"{s.method} {s.build_s:.0f}/{s.max_drift_msat / 1000:.0f}"
            for s in summaries
            if s.total
        )
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES_SAT),
        help="comma-separated invoice amounts in sat (default: %(default)s)",
    )
    ap.add_argument("--rounds", type=int, default=1, help="times each size is paid (default 1)")
    ap.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of: " + ",".join(m.name for m in all_methods()),
    )
    ap.add_argument(
        "--cold",
        action="store_true",
        help="make the payer forget what it learnt after every payment (restart, "
        "wipe askrene layers and Barq's database); default: it keeps learning",
    )
    ap.add_argument("--plugin", default=PLUGIN, help="the Barq plugin (default: %(default)s)")
    ap.add_argument("--retry-for", type=int, default=30, help="retry_for given to every method")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return ap.parse_args(argv)


def run(args: argparse.Namespace, on_row: Callable[[MethodSummary], None] | None = None) -> int:
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    methods = all_methods(args.plugin)
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = set(wanted) - {m.name for m in methods}
        if unknown:
            print(f"unknown methods: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        methods = [m for m in methods if m.name in wanted]
    base = Path(tempfile.mkdtemp(prefix="barq-regtest-bench-"))
    h: Harness | None = None
    summaries: list[MethodSummary] = []
    records: list[PaymentRecord] = []
    try:
        h = Harness(base, verbose=not args.quiet)
        barq_problem: str | None = None
        if any(m.command == "barqpay" for m in methods):
            barq_problem = h.barq_preflight(args.plugin)
            if barq_problem:
                h.log(f"barqpay unavailable: {barq_problem}")
        for m in methods:
            if m.command == "barqpay" and barq_problem:
                summaries.append(summarize(m.name, [], 0.0, 0, unavailable=barq_problem))
                continue
            h.log(f"{m.name}: building the network")
            t0 = time.monotonic()
            net = h.build(m.name.replace(":", "-"), m.payer_opts)
            build_s = time.monotonic() - t0
            h.log(f"{m.name}: built in {build_s:.1f}s; paying")
            mine: list[PaymentRecord] = []
            harness_error: str | None = None
            drift = 0
            try:
                for rnd in range(args.rounds):
                    for sz in sizes:
                        rec = net.pay(
                            m, sz * 1000, f"r{rnd}-{sz}", args.retry_for, rnd, cold=args.cold
                        )
                        h.log(
                            f"  {m.name} {sz:>10,} sat: {'ok ' if rec.ok else 'FAIL'} "
                            f"{rec.wall_s:6.3f}s parts={rec.parts} attempts={rec.attempts} "
                            f"fee={rec.fee_msat} {rec.error or ''}"
                        )
                        mine.append(rec)
                drift = net.max_drift_msat()
            except Exception as exc:  # a node died or hung: report it, go on with the next method
                harness_error = (
                    f"harness error after {len(mine)} payment(s): {exc!r}; {net.dead_nodes()}"
                )
                h.log(f"{m.name}: {harness_error}")
            finally:
                net.stop()
            records += mine
            summaries.append(summarize(m.name, mine, build_s, drift, unavailable=harness_error))
            if on_row:
                on_row(summaries[-1])
    finally:
        if h is not None:
            h.close()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"scratch directory kept: {base}", file=sys.stderr)
    lnd = _version(["lightningd", "--version"])
    btc = _version(["bitcoind", "-version"])
    print(
        f"regtest benchmark: lightningd {lnd}; {btc}; sizes {sizes} sat x {args.rounds} "
        f"round(s); retry_for {args.retry_for}s; maxfee 0.5%+5sat; payer knowledge "
        f"{'wiped after every payment (--cold)' if args.cold else 'kept across payments'}"
    )
    print(render(summaries, records, sizes))
    if args.json:
        rep = Report(
            lightningd=lnd,
            bitcoind=btc,
            sizes_sat=sizes,
            rounds=args.rounds,
            retry_for=args.retry_for,
            cold=args.cold,
            summaries=summaries,
            payments=records,
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(rep)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if MISSING:
        print(
            f"skipped: {', '.join(MISSING)} not found on PATH "
            "(install them or set BARQ_REGTEST_PATH=/dir/with/binaries; see README)"
        )
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
