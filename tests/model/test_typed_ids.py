"""The ids are distinct types: mypy --strict rejects a swapped argument (issue 11)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

SWAPPED = textwrap.dedent(
    """
    from barq.model import NodeId, PartId, PaymentHash, Scid, scid_dir
    from barq.node.base import NodeInterface

    async def f(node: NodeInterface, h: PaymentHash, n: NodeId, s: Scid, p: PartId) -> None:
        scid_dir(n, 0)  # a node id where a short channel id belongs
        await node.waitsendpay(n, partid=p, groupid=1)  # a node id where the payment hash belongs
        await node.waitsendpay(h, partid=1, groupid=1)  # a bare int where a PartId belongs
    """
)


def test_mypy_rejects_swapped_ids(tmp_path: Path) -> None:
    src = tmp_path / "swapped.py"
    src.write_text(SWAPPED)
    root = Path(__file__).resolve().parents[2]
    out, _err, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--follow-imports=silent",
            "--python-version=3.11",
            f"--config-file={root / 'pyproject.toml'}",
            str(src),
        ]
    )
    assert status == 1, out
    assert 'Argument 1 to "scid_dir" has incompatible type "NodeId"; expected "Scid"' in out
    assert 'incompatible type "NodeId"; expected "PaymentHash"' in out
    assert 'Argument "partid" to "waitsendpay" of "NodeInterface" has incompatible type' in out
    assert out.count("error:") == 3, out
