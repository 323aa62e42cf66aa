"""What a ``barq bench`` run was: enough to reproduce it, or to refuse to compare two runs.

:func:`run_metadata` gathers the Barq version and git commit, the graph (file
name, SHA-256 of the file and of its content, counts), every setting of the
run, every strategy's parameters, the engine defaults, Python and the
platform. :func:`differences` names what makes two runs' results
incomparable (ignoring when, where and how fast they ran).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

import barq
from barq.graph import Graph

__all__ = [
    "COMPARED",
    "differences",
    "file_sha256",
    "git_commit",
    "graph_info",
    "graph_sha256",
    "platform_info",
    "run_metadata",
    "strategy_info",
]

#: the top-level keys of the metadata that must agree for two runs to be compared
COMPARED = ("barq", "graph", "config", "engine", "strategies")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes (read in 1 MiB blocks).

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def graph_sha256(graph: Graph) -> str:
    """Hex SHA-256 of the graph's content (node ids, half-channels and their policies).

    Two graphs hash alike exactly when every array and id list is equal,
    whatever file format they were loaded from.
    """
    h = hashlib.sha256()
    h.update("\n".join(graph.nodes).encode())
    h.update(b"\0")
    h.update("\n".join(graph.scid).encode())
    for name in sorted(n for n in Graph.__slots__ if not n.startswith("_")):  # public arrays
        value = getattr(graph, name)
        if not isinstance(value, np.ndarray):
            continue
        arr = np.ascontiguousarray(value)
        h.update(f"\0{name}:{arr.dtype.str}:".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def graph_info(graph: Graph, path: Path | None, label: str) -> dict[str, Any]:
    """The graph's identity: file name and SHA-256 (``None`` for a built-in network),
    the sibling node map's when one was read, the content hash and the counts."""
    info: dict[str, Any] = {
        "source": label,
        "file": None if path is None else path.name,
        "sha256": None if path is None else file_sha256(path),
    }
    if path is not None:
        from barq.graph.compressed import default_node_map_path

        node_map = default_node_map_path(path)
        if node_map.is_file() and node_map != path:
            info["node_map"] = {"file": node_map.name, "sha256": file_sha256(node_map)}
    info |= {
        "content_sha256": graph_sha256(graph),
        "nodes": graph.num_nodes,
        "channels": len(set(graph.scid)),
        "half_channels": graph.num_edges,
    }
    return info


def git_commit() -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the checkout Barq runs from (``None`` when not a git one)."""
    root = Path(barq.__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def strategy_info(name: str) -> dict[str, Any]:
    """One strategy's description, class, knobs and parameters (its ``params`` Struct).

    Raises:
        UnknownStrategy: ``name`` is not registered.
    """
    from barq.strategies import get_strategy

    s = get_strategy(name)
    params = getattr(s, "params", None)
    return {
        "description": s.description,
        "class": f"{type(s).__module__}:{type(s).__qualname__}",
        "splits": s.splits,
        "min_part_msat": getattr(s, "min_part_msat", None),
        "halve_on_failure": getattr(s, "halve_on_failure", None),
        "parameters": {} if params is None else msgspec.to_builtins(params),
    }


def platform_info() -> dict[str, Any]:
    """Python, the operating system and the machine."""
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }


def run_metadata(
    *,
    graph: dict[str, Any],
    config: Mapping[str, Any],
    engine: Mapping[str, Any],
    strategies: Sequence[str],
    execution: Mapping[str, Any],
    started_at: dt.datetime,
    wall_s: float,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``meta`` object of ``barq bench --json`` (see ``docs/bench.md``).

    Args:
        graph: :func:`graph_info`.
        config: every setting of the run (``BenchConfig`` as builtins).
        engine: the engine settings every payment ran with (defaults resolved).
        strategies: names, each described by :func:`strategy_info`.
        execution: how it ran (jobs, dask address): no effect on the results.
        started_at: when the run started (timezone-aware).
        wall_s: how long it took.
        argv: the command line, when it came from one.
    """
    return {
        "barq": {"version": barq.__version__, **git_commit()},
        "graph": graph,
        "config": dict(config),
        "engine": dict(engine),
        "strategies": {name: strategy_info(name) for name in strategies},
        "execution": dict(execution),
        **platform_info(),
        "started_at": started_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 3),
        "argv": None if argv is None else list(argv),
    }


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Dotted paths of the :data:`COMPARED` metadata where runs ``a`` and ``b`` differ.

    An empty list: same code, graph, settings and strategy parameters, so the
    results may be compared (``started_at``, ``wall_s``, ``execution``,
    platform and Python are ignored). Arguments are ``meta`` objects.
    """
    out: list[str] = []

    def walk(x: Any, y: Any, path: str) -> None:
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{path}.{k}")
        elif x != y:
            out.append(path)

    for key in COMPARED:
        walk(a.get(key), b.get(key), key)
    return out
