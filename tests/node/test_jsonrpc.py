"""The JSON-RPC transport under LightningdNode: concurrency, framing, broken sockets."""

from __future__ import annotations

import functools
import socket
from pathlib import Path
from typing import Any

import pytest
import trio
from fake_lightningd import EXAMPLES, Handler, Reply, Request, frame, running

from barq.errors import (
    InvalidParams,
    RpcConnectionError,
    RpcError,
)
from barq.node.lightningd import LightningdNode

PEER = "033845802d25b4e074ccfd7cd8b339a41dc75bf9978a034800444b51d42b07799a"
PAYMENT_HASH = "7279b503a14344267e464829da26fcafa4e5a89c6d625a22b9345a874bdfbbf9"
TIMEOUT_S = 5


@pytest.mark.trio
async def test_many_concurrent_calls_answered_out_of_order(sock: Path) -> None:
    n = 24
    arrived = trio.Event()
    turns = [trio.Event() for _ in range(n)]
    answered: list[int] = []

    async def echo(request: Request) -> Reply:
        if request.index == n - 1:
            arrived.set()
        await arrived.wait()
        # Answer strictly in reverse arrival order.
        if request.index != n - 1:
            await turns[request.index + 1].wait()
        answered.append(request.params["n"])
        turns[request.index].set()
        return Reply(result={"n": request.params["n"], "method": request.method})

    results: dict[int, Any] = {}

    async def one(node: LightningdNode, i: int) -> None:
        results[i] = await node.call("echo", {"n": i})

    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"echo": echo}) as (fake, node), trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, node, i)
    assert results == {i: {"n": i, "method": "echo"} for i in range(n)}
    assert len(answered) == n and answered != sorted(answered)
    assert fake.connections == 1
    ids = [r.id for r in fake.requests]
    assert len(set(ids)) == n and all(i.startswith("barq:echo#") for i in ids)


@pytest.mark.trio
async def test_fast_reply_not_stuck_behind_slow_calls(sock: Path) -> None:
    """A reply read by another caller wakes its owner at once, whatever the others wait for."""
    slow_arrived = trio.Event()
    slow_count = 0

    async def hang(request: Request) -> Reply:
        nonlocal slow_count
        slow_count += 1
        if slow_count == 3:
            slow_arrived.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    with trio.fail_after(TIMEOUT_S):
        handlers: dict[str, Handler] = {
            "waitsendpay": hang,
            "getinfo": Reply(result=EXAMPLES["getinfo"]),
        }
        async with running(sock, handlers) as (_, node), trio.open_nursery() as nursery:
            for partid in range(3):
                nursery.start_soon(
                    functools.partial(node.waitsendpay, PAYMENT_HASH, partid=partid, groupid=1)
                )
            await slow_arrived.wait()
            for _ in range(3):
                with trio.fail_after(1):
                    assert (await node.get_info()).id == PEER
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_split_coalesced_frames_and_notifications(sock: Path) -> None:
    info = EXAMPLES["getinfo"]
    with trio.fail_after(TIMEOUT_S):
        async with running(
            sock, {"getinfo": Reply(result=info, notify_first=True)}, split_writes=7
        ) as (fake, node):
            assert (await node.get_info()).blockheight == 114
            fake.split_writes, fake.cuts = 1, (-1,)  # cut between the two "\n"
            assert (await node.get_info()).blockheight == 114
            fake.cuts, fake.coalesce = (), 3  # three replies in one write
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(node.get_info)
            fake.coalesce = 1
            assert (await node.get_info()).alias == "SILENTARTIST-v26.09"
    assert fake.connections == 1 and len(fake.requests) == 6


@pytest.mark.trio
async def test_socket_missing(sock: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with LightningdNode(sock) as node:
            with pytest.raises(RpcConnectionError) as err:
                await node.get_info()
    assert str(err.value) == (f"lightningd RPC socket {sock}: no such file (calling getinfo)")


@pytest.mark.trio
async def test_connection_refused(sock: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))  # a socket file nobody listens on
    stale.close()
    with trio.fail_after(TIMEOUT_S):
        async with LightningdNode(sock) as node:
            with pytest.raises(RpcConnectionError, match="connection refused") as err:
                await node.listsendpays()
    assert str(sock) in str(err.value) and "listsendpays" in str(err.value)


@pytest.mark.trio
async def test_not_a_socket_and_unserialisable_params(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with LightningdNode(tmp_path) as node:
            with pytest.raises(RpcConnectionError, match="not a socket"):
                await node.get_info()
            with pytest.raises(InvalidParams, match="not JSON-serialisable"):
                await node.call("echo", {"x": object()})


@pytest.mark.trio
async def test_server_closes_mid_call_fails_every_pending_call(sock: Path) -> None:
    both_waiting = trio.Event()
    waiting = 0

    async def hang(request: Request) -> Reply:
        nonlocal waiting
        waiting += 1
        if waiting == 2:
            both_waiting.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def close(request: Request) -> Reply:
        await both_waiting.wait()
        return Reply(close=True)

    errors: dict[str, BaseException] = {}

    async def catch(method: str, call: Any) -> None:
        try:
            await call()
        except RpcConnectionError as exc:
            errors[method] = exc

    with trio.fail_after(TIMEOUT_S):
        async with running(
            sock,
            {
                "waitsendpay": hang,
                "listsendpays": hang,
                "stop": close,
                "getinfo": Reply(result=EXAMPLES["getinfo"]),
            },
        ) as (fake, node):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    catch,
                    "waitsendpay",
                    lambda: node.waitsendpay(PAYMENT_HASH, partid=1, groupid=1),
                )
                nursery.start_soon(catch, "listsendpays", node.listsendpays)
                nursery.start_soon(catch, "stop", lambda: node.call("stop"))
            # The next call opens a new connection.
            assert (await node.get_info()).blockheight == 114
    assert set(errors) == {"waitsendpay", "listsendpays", "stop"}
    for method, exc in errors.items():
        assert str(sock) in str(exc) and f"(calling {method})" in str(exc)
        assert "closed the connection" in str(exc)
    assert fake.connections == 2


@pytest.mark.trio
async def test_malformed_response(sock: Path) -> None:
    answers = iter(
        [
            Reply(raw=b"<html>this is not json</html>\n\n"),
            Reply(raw=b'{"jsonrpc":"2.0","id":"x","result":\n\n'),
            Reply(result=EXAMPLES["getinfo"]),
        ]
    )
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"getinfo": lambda r: next(answers)}) as (fake, node):
            with pytest.raises(RpcConnectionError, match=r"malformed response.*html"):
                await node.get_info()
            with pytest.raises(RpcConnectionError, match="malformed response"):
                await node.get_info()
            assert (await node.get_info()).id == PEER
    assert fake.connections == 3


@pytest.mark.trio
async def test_reply_without_result_or_error(sock: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running(
            sock, {"getinfo": lambda r: Reply(raw=frame({"jsonrpc": "2.0", "id": r.id}))}
        ) as (_, node):
            with pytest.raises(RpcError, match="neither result nor error"):
                await node.get_info()


@pytest.mark.trio
async def test_cancelled_caller_leaves_others_working(sock: Path) -> None:
    handlers: dict[str, Handler] = {
        "waitsendpay": Reply(result=EXAMPLES["waitsendpay"], delay_s=0.2),
        "getinfo": Reply(result=EXAMPLES["getinfo"], delay_s=0.05),
    }
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, handlers) as (fake, node):
            with trio.move_on_after(0.01) as scope:
                await node.waitsendpay(PAYMENT_HASH, partid=0, groupid=1)
            assert scope.cancelled_caught
            assert (await node.get_info()).id == PEER
            await trio.sleep(0.25)  # the orphan waitsendpay reply arrives and is dropped
            assert (await node.get_info()).id == PEER
    assert fake.connections == 1


@pytest.mark.trio
async def test_cancelled_reader_hands_over_to_a_waiter(sock: Path) -> None:
    hang_arrived = trio.Event()

    async def hang(request: Request) -> Reply:
        hang_arrived.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    handlers: dict[str, Handler] = {
        "waitsendpay": hang,
        "getinfo": Reply(result=EXAMPLES["getinfo"], delay_s=0.1),
    }
    got: list[str] = []

    async def get_id(node: LightningdNode) -> None:
        got.append((await node.get_info()).id)

    with trio.fail_after(TIMEOUT_S):
        async with running(sock, handlers) as (_, node), trio.open_nursery() as nursery:
            reader = trio.CancelScope()

            async def slow() -> None:
                with reader:  # first in, so it reads for everyone
                    await node.waitsendpay(PAYMENT_HASH, partid=0, groupid=1)

            nursery.start_soon(slow)
            await hang_arrived.wait()
            nursery.start_soon(get_id, node)
            await trio.sleep(0.02)
            reader.cancel()
    assert got == [PEER]


@pytest.mark.trio
async def test_aclose_fails_calls_in_flight_and_later_calls(sock: Path) -> None:
    received = trio.Event()

    async def hang(request: Request) -> Reply:
        received.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"waitsendpay": hang}) as (_, node):
            async with trio.open_nursery() as nursery:

                async def waiter() -> None:
                    with pytest.raises(RpcConnectionError, match="client was closed"):
                        await node.waitsendpay(PAYMENT_HASH, partid=0, groupid=1)

                nursery.start_soon(waiter)
                await received.wait()
                await node.aclose()
            with pytest.raises(RpcConnectionError, match="client was closed"):
                await node.get_info()
            await node.aclose()
