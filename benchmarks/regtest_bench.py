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
parts per payment (both from the payer's ``listsendpays``); ``rounds`` the mean number of rounds
of sends per payment and ``1st send ms`` the median time from the call to lightningd starting on
the first part (both from the payer's log, ``_regtest_log.py``; per size: ``Nr``, mean rounds);
fees are over successful payments.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from _regtest_common import (
    CHANNELS,
    DEFAULT_METHODS,
    DEFAULT_SIZES_SAT,
    MISSING,
    NODE_FEES,
    NODES,
    PAYER,
    PLUGIN,
    UTXO_SAT,
    MethodSummary,
    PaymentRecord,
    Report,
    _version,
    all_methods,
    quiet_node,
    render,
    summarize,
)
from _regtest_network import Network


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
        default=",".join(DEFAULT_METHODS),
        help="comma-separated subset of: "
        + ",".join(m.name for m in all_methods())
        + " (default: %(default)s; 'all' for every one)",
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
    if args.methods and args.methods != "all":
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
