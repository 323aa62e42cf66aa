"""A lightning-dir whose ``lightning-rpc`` path is longer than AF_UNIX allows (issue 17 item 6).

lightningd serves such a socket (it binds relative to its directory); Barq
used to fail with "AF_UNIX path too long" and never ran. The fake lightningd
here binds the same way (through a descriptor of the long directory), and
the client is given the long path, as the plugin is by ``init``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from fake_lightningd import EXAMPLES, FakeLightningd, Reply

from barq.errors import RpcConnectionError
from barq.node.lightningd import LightningdNode


def long_dir(tmp_path: Path) -> Path:
    d = tmp_path / ("lightning-dir-" + "x" * 60) / ("y" * 40) / "regtest"
    d.mkdir(parents=True)
    assert len(os.fsencode(d / "lightning-rpc")) > 107 + 20  # sun_path: 108 bytes with NUL
    return d


@contextmanager
def short_alias(directory: Path) -> Iterator[Path]:
    """``directory`` as ``/proc/self/fd/<n>`` while the block runs (how the fake binds)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield Path(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def fds_on(directory: Path) -> list[str]:
    """Our open descriptors that point at ``directory``."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(directory):
                out.append(fd)
        except OSError:
            pass
    return out


pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)"
)


@pytest.mark.trio
async def test_a_socket_path_too_long_for_af_unix_is_reached(tmp_path: Path) -> None:
    d = long_dir(tmp_path)
    rpc = d / "lightning-rpc"
    with pytest.raises(OSError, match="too long"):  # what the plain connect says
        await anyio.connect_unix(rpc)
    with short_alias(d) as alias:
        fake = FakeLightningd(alias / "lightning-rpc", {"getinfo": Reply(EXAMPLES["getinfo"])})
        async with anyio.create_task_group() as tg:
            await tg.start(fake.serve)
            async with LightningdNode(rpc, lightning_dir=str(d.parent)) as node:
                info = await node.get_info()
                again = await node.get_info()  # one connection, kept
                assert fds_on(d) == [alias.name]  # the client kept no descriptor of the dir
            tg.cancel_scope.cancel()
    assert rpc.is_socket()
    assert info.id == EXAMPLES["getinfo"]["id"] and again == info
    assert fake.connections == 1 and [r.method for r in fake.requests] == ["getinfo"] * 2


@pytest.mark.trio
async def test_a_long_path_without_a_server_is_a_clear_error(tmp_path: Path) -> None:
    rpc = long_dir(tmp_path) / "lightning-rpc"
    async with LightningdNode(rpc) as node:
        with pytest.raises(RpcConnectionError, match="no such file") as info:
            await node.get_info()
    assert str(rpc) in info.value.message
    missing = tmp_path / ("z" * 120) / "lightning-rpc"
    async with LightningdNode(missing) as node:
        with pytest.raises(RpcConnectionError, match="no such file"):
            await node.get_info()
