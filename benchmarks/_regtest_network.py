"""The regtest benchmark's running network (``regtest_bench.py``): paying, tracing the parts of a
payment and restoring the balances."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _regtest_common import (
    CHANNELS,
    COLD_SETTLE_S,
    NODES,
    PAYEE,
    PAYER,
    Method,
    PaymentRecord,
    maxfee_msat,
)
from _regtest_log import send_rounds, send_times

if TYPE_CHECKING:
    from regtest_bench import Harness


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
        log = Path(payer.daemon.lightning_dir) / "log"
        log_from = log.stat().st_size if log.exists() else 0
        called_at = time.time()  # the log's clock (UNIX time), for the first send
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
        sends = _sends_since(log, log_from)
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
            timings_ms=result.get("timings_ms") if isinstance(result, dict) else None,
            rounds=send_rounds(sends),
            first_send_ms=round((sends[0] - called_at) * 1000, 1) if sends else None,
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


def _sends_since(log: Path, offset: int) -> list[float]:
    """The payer's sends (:func:`_regtest_log.send_times`) logged after byte ``offset``."""
    if not log.exists():
        return []
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", errors="replace")
    return send_times(text.splitlines())
