"""File reading shared by the graph loaders: every failure becomes a GraphLoadError."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from barq.errors import GraphLoadError

__all__ = ["GZIP_MAGIC", "StrPath", "gunzip", "peek", "read_bytes"]

StrPath = str | os.PathLike[str]

GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: StrPath) -> bytes:
    """The whole file.

    Raises:
        GraphLoadError: ``"<path>: no such file"``, a directory, unreadable...
    """
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise GraphLoadError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise GraphLoadError(f"{p}: is a directory, not a graph file") from None
    except OSError as e:
        raise GraphLoadError(f"{p}: cannot read: {e.strerror or e}") from None


def gunzip(data: bytes, path: StrPath) -> bytes:
    """``data`` decompressed if it starts with the gzip magic, else ``data`` itself.

    Raises:
        GraphLoadError: corrupt or truncated gzip stream.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise GraphLoadError(f"{path}: corrupt or truncated gzip data: {e}") from None


def peek(path: StrPath, size: int = 64) -> bytes:
    """Up to ``size`` leading bytes of the file, decompressed when it is gzip.

    Raises:
        GraphLoadError: as :func:`read_bytes`, or a gzip header that cannot be read.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(max(size, 2))
            if not head.startswith(GZIP_MAGIC):
                return head[:size]
            f.seek(0)
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = b""
            while len(out) < size:
                chunk = f.read(65536)
                if not chunk:
                    break
                out += d.decompress(chunk, size - len(out))
                while d.unconsumed_tail and len(out) < size:
                    out += d.decompress(d.unconsumed_tail, size - len(out))
            return out[:size]
    except FileNotFoundError:
        raise GraphLoadError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise GraphLoadError(f"{p}: is a directory, not a graph file") from None
    except zlib.error as e:
        raise GraphLoadError(f"{p}: corrupt gzip data: {e}") from None
    except OSError as e:
        raise GraphLoadError(f"{p}: cannot read: {e.strerror or e}") from None
