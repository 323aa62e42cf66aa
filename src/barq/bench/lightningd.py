"""A throw-away regtest ``lightningd`` whose gossip is a graph: the askrene peer's host.

:func:`write_gossip_store` writes a :class:`~barq.graph.Graph` as the
``gossip_store`` gossipd reads at start (channel announcements with zero
signatures, amounts, one ``channel_update`` per half-channel, CRC-32C as
gossipd checks them). Core Lightning v26.06 loads such a store as is: a
store of the current version is neither re-validated nor rewritten, and
its pruning of stale updates first runs days after start. Written by us
on purpose: ``devtools/gossmap-compress decompress`` (v26.06) swaps the
directions of channels whose node1 has the larger id and writes htlc_max
1000x too small.

:class:`RegtestLightningd` starts ``bitcoind -regtest`` (101 blocks mined
to an anyone-can-spend script) and ``lightningd`` on that store in a
temporary directory, without listening on any port, and stops both.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from barq.errors import BarqError
from barq.graph import Graph
from barq.graph.store_writer import GossipStoreWriter
from barq.model import Scid

__all__ = [
    "BINARIES",
    "RegtestLightningd",
    "find_binaries",
    "write_gossip_store",
]

#: the executables needed, looked up on ``BARQ_REGTEST_PATH`` then ``PATH``
BINARIES = ("lightningd", "bitcoind", "bitcoin-cli")
#: ``raw(OP_TRUE)``: mined coins nobody needs to spend
_MINE_TO = "raw(51)#8lvh9jxk"


def find_binaries(env: Mapping[str, str] | None = None) -> dict[str, Path] | str:
    """The paths of :data:`BINARIES`, or one line saying which is missing.

    ``BARQ_REGTEST_PATH`` (colon-separated, as for the regtest suite) is
    searched before ``PATH``.
    """
    env = os.environ if env is None else env
    path = os.pathsep.join(p for p in (env.get("BARQ_REGTEST_PATH"), env.get("PATH")) if p)
    found: dict[str, Path] = {}
    for name in BINARIES:
        where = shutil.which(name, path=path)
        if where is None:
            return (
                f"{name} not found on BARQ_REGTEST_PATH or PATH (build Core Lightning and "
                "bitcoind, then set BARQ_REGTEST_PATH)"
            )
        found[name] = Path(where)
    return found


def write_gossip_store(graph: Graph, path: Path, *, timestamp: int | None = None) -> int:
    """Write ``graph`` as a ``gossip_store`` at ``path``; returns its size in bytes.

    Every half-channel row becomes one ``channel_update`` (disabled rows with
    the disable bit) of the channel announced once, in BOLT 7 node order,
    with the row's capacity. ``timestamp`` (default: now) stamps every update.
    """
    stamp = int(time.time()) if timestamp is None else timestamp
    rows: dict[Scid, list[int]] = {}
    for e, scid in enumerate(graph.scid):
        rows.setdefault(scid, []).append(e)
    w = GossipStoreWriter()
    w.add_uuid()
    for scid, es in rows.items():
        e0 = es[0]
        w.add_channel(
            scid,
            graph.nodes[int(graph.src[e0])],
            graph.nodes[int(graph.dst[e0])],
            capacity_sat=int(graph.capacity_msat[e0]) // 1000,
        )
        for e in es:
            w.add_update(
                scid,
                int(graph.direction[e]),
                fee_base_msat=int(graph.fee_base_msat[e]),
                fee_ppm=int(graph.fee_ppm[e]),
                cltv_delta=int(graph.cltv_delta[e]),
                htlc_min_msat=int(graph.htlc_min_msat[e]),
                htlc_max_msat=int(graph.htlc_max_msat[e]),
                disabled=not bool(graph.enabled[e]),
                timestamp=stamp,
            )
    path.write_bytes(w.getvalue())
    return len(w)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(what: str, ready: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``ready()`` until true; raise with the log's tail if ``proc`` dies or time runs out."""
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > end:
            tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
            raise BarqError(f"{what} did not start ({proc.poll()=}): {tail}")
        time.sleep(0.2)


class RegtestLightningd:
    """``bitcoind`` + ``lightningd`` (regtest) on a written store; use :meth:`start`.

    Attributes:
        rpc: a ``pyln.client.LightningRpc`` on the node.
        lightning_dir: the node's directory (``regtest/gossip_store`` in it).
    """

    def __init__(self, rpc: Any, lightning_dir: Path) -> None:
        self.rpc = rpc
        self.lightning_dir = lightning_dir

    @classmethod
    @contextmanager
    def start(
        cls, graph: Graph, binaries: Mapping[str, Path], *, timeout_s: float = 120.0
    ) -> Iterator[RegtestLightningd]:
        """Start both daemons on ``graph``'s store; stop them (and remove the directory) after.

        Raises:
            BarqError: a daemon did not start within ``timeout_s`` (the message has its log).
        """
        from pyln.client import LightningRpc

        with tempfile.TemporaryDirectory(prefix="barq-askrene-") as tmp:
            root = Path(tmp)
            btc, ln = root / "bitcoin", root / "lightning"
            (ln / "regtest").mkdir(parents=True)
            btc.mkdir()
            write_gossip_store(graph, ln / "regtest" / "gossip_store")
            port = _free_port()
            procs: list[subprocess.Popen[bytes]] = []
            try:
                _start_bitcoind(binaries, btc, port, procs, timeout_s)
                log = ln / "log"
                lightningd = _spawn(
                    procs,
                    str(binaries["lightningd"]),
                    "--network=regtest",
                    f"--lightning-dir={ln}",
                    *(f"--bitcoin-{k}={v}" for k, v in _bitcoin_options(binaries, btc, port)),
                    "--autolisten=false",
                    f"--log-file={log}",
                    "--disable-plugin=clnrest",
                    "--disable-plugin=cln-grpc",
                )
                rpc_path = ln / "regtest" / "lightning-rpc"
                _wait("lightningd", rpc_path.exists, lightningd, log, timeout_s)
                rpc = LightningRpc(str(rpc_path))
                _wait("lightningd", lambda: _answers(rpc), lightningd, log, timeout_s)
                yield cls(rpc, ln)
            finally:
                for proc in reversed(procs):
                    _stop(proc)


def _bitcoin_options(binaries: Mapping[str, Path], btc: Path, port: int) -> list[tuple[str, str]]:
    return [
        ("rpcuser", "barq"),
        ("rpcpassword", "barq"),
        ("rpcport", str(port)),
        ("datadir", str(btc)),
        ("cli", str(binaries["bitcoin-cli"])),
    ]


def _spawn(procs: list[subprocess.Popen[bytes]], *argv: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` (output discarded) and remember it in ``procs`` for :func:`_stop`."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(proc)
    return proc


def _start_bitcoind(
    binaries: Mapping[str, Path],
    btc: Path,
    port: int,
    procs: list[subprocess.Popen[bytes]],
    timeout_s: float,
) -> None:
    """``bitcoind -regtest`` on ``port``, answering, with 101 blocks."""
    auth = ["-rpcuser=barq", "-rpcpassword=barq", f"-rpcport={port}"]
    cli = [str(binaries["bitcoin-cli"]), "-regtest", f"-datadir={btc}", *auth]
    bitcoind = _spawn(
        procs,
        str(binaries["bitcoind"]),
        "-regtest",
        f"-datadir={btc}",
        "-listen=0",
        "-fallbackfee=0.0002",
        *auth,
    )

    def answers() -> bool:
        return subprocess.run([*cli, "getblockchaininfo"], capture_output=True).returncode == 0

    _wait("bitcoind", answers, bitcoind, btc / "regtest" / "debug.log", timeout_s)
    subprocess.run([*cli, "generatetodescriptor", "101", _MINE_TO], check=True, capture_output=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(rpc: Any) -> bool:
    """The node answers ``getinfo`` (its plugins are up)."""
    try:
        rpc.getinfo()
    except (OSError, ValueError):
        return False
    return True
