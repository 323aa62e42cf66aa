"""Where ``barq bench`` runs its tasks: here, in worker processes, or on a dask cluster.

A task is a module-level function ``fn(ctx, item)`` (``barq.bench.runner.plan_task``,
``session_task``): ``ctx`` (the graph, the keys, the config) is sent once per
worker, each item with its task. :meth:`Executor.imap` yields ``(index, result)``
as tasks end, so the caller puts results back in input order: the output does
not depend on where or in which order the tasks ran.

* ``jobs=1``: in this process, in order.
* ``jobs=N``: a ``multiprocessing`` pool of N processes. On Linux they are forked
  (strategies registered in this process with ``register_strategy`` are there
  too); elsewhere spawned (strategies must be importable).
* ``dask=ADDRESS``: ``dask.distributed`` (the ``dask`` extra): ``ctx`` is
  scattered to every worker once, tasks are submitted and gathered as they end.
  Workers need the same Barq (and third-party strategies) installed.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from barq.errors import BarqError

__all__ = ["DASK_EXTRA", "Executor", "open_executor"]

C = TypeVar("C")
I = TypeVar("I")  # noqa: E741
R = TypeVar("R")

#: what to install for ``--dask``
DASK_EXTRA = "pip install 'barq[dask]'"


class Executor(Protocol):
    """Runs ``fn(ctx, item)`` for every item; yields ``(index, result)`` as they end."""

    def imap(self, fn: Callable[[Any, I], R], items: Sequence[I]) -> Iterator[tuple[int, R]]: ...


class _Serial:
    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def imap(self, fn: Callable[[Any, I], R], items: Sequence[I]) -> Iterator[tuple[int, R]]:
        for i, item in enumerate(items):
            yield i, fn(self._ctx, item)


_WORKER_CTX: Any = None


def _worker_init(ctx: Any) -> None:
    global _WORKER_CTX
    _WORKER_CTX = ctx
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _worker_call(task: tuple[Callable[[Any, Any], Any], int, Any]) -> tuple[int, Any]:
    fn, i, item = task
    return i, fn(_WORKER_CTX, item)


class _Processes:
    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def imap(self, fn: Callable[[Any, I], R], items: Sequence[I]) -> Iterator[tuple[int, R]]:
        tasks = [(fn, i, item) for i, item in enumerate(items)]
        yield from self._pool.imap_unordered(_worker_call, tasks, chunksize=1)


def _indexed(fn: Callable[[Any, Any], Any], ctx: Any, i: int, item: Any) -> tuple[int, Any]:
    return i, fn(ctx, item)


class _Dask:
    def __init__(self, client: Any, ctx_future: Any) -> None:
        self._client = client
        self._ctx = ctx_future

    def imap(self, fn: Callable[[Any, I], R], items: Sequence[I]) -> Iterator[tuple[int, R]]:
        as_completed = importlib.import_module("distributed").as_completed
        futures = [
            self._client.submit(_indexed, fn, self._ctx, i, item, pure=False)
            for i, item in enumerate(items)
        ]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            self._client.cancel([f for f in futures if not f.done()])


def start_method() -> str:
    """``"fork"`` on Linux (workers see this process's registered strategies), else ``"spawn"``."""
    return "fork" if sys.platform == "linux" else "spawn"


@contextlib.contextmanager
def open_executor(ctx: Any, *, jobs: int = 1, dask: str | None = None) -> Iterator[Executor]:
    """An :class:`Executor` for ``ctx``, shut down (workers stopped) on exit.

    Args:
        ctx: sent once to every worker; must pickle for ``dask`` (and for
            ``jobs`` > 1 where processes are spawned).
        jobs: worker processes; 1 runs everything in this process.
        dask: a ``dask.distributed`` scheduler address (``tcp://host:8786``).

    Raises:
        BarqError: ``dask`` given but ``distributed`` is not installed, or the
            scheduler cannot be reached.
    """
    if dask is not None:
        with _dask_executor(ctx, dask) as ex:
            yield ex
        return
    if jobs <= 1:
        yield _Serial(ctx)
        return
    mp = multiprocessing.get_context(start_method())
    pool = mp.Pool(processes=jobs, initializer=_worker_init, initargs=(ctx,))
    try:
        yield _Processes(pool)
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    pool.close()
    pool.join()


@contextlib.contextmanager
def _dask_executor(ctx: Any, address: str) -> Iterator[Executor]:
    try:
        distributed: Any = importlib.import_module("distributed")
    except ImportError as exc:
        raise BarqError(f"--dask needs dask.distributed: {DASK_EXTRA}") from exc
    try:
        client = distributed.Client(address, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise BarqError(f"cannot reach the dask scheduler at {address}: {exc}") from exc
    try:
        yield _Dask(client, client.scatter(ctx, broadcast=True))
    finally:
        client.close()
