"""Regtest suite: real lightningd + bitcoind through pyln-testing's ``node_factory``.

Binaries are found on ``PATH``; ``BARQ_REGTEST_PATH`` (colon-separated
directories) is prepended to ``PATH`` first, e.g.
``BARQ_REGTEST_PATH=/opt/bin nox -s regtest``. When either ``lightningd`` or
``bitcoind`` is missing, every test here is skipped with one reason.

Bitcoin Knots rejects transactions with nLockTime 21 ("parasite-cat21"), which
lightningd may pick on a short regtest chain: Knots is started with
``-rejectparasites=0`` (Bitcoin Core does not know that option, so only Knots).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from regtest_env import MISSING

# the tests' route blinding (tests/onion/route_blinding.py) for test_bolt12.py's two paths
_ONION = str(Path(__file__).resolve().parents[1] / "onion")
if _ONION not in sys.path:
    sys.path.append(_ONION)

if not MISSING:
    from pyln.testing import fixtures as _pyln_fixtures
    from pyln.testing.fixtures import *  # noqa: F403
    from pyln.testing.utils import BitcoinD

    def _is_knots() -> bool:
        out = subprocess.run(["bitcoind", "-version"], capture_output=True, text=True).stdout
        return "Knots" in out

    class KnotsAwareBitcoinD(BitcoinD):  # type: ignore[misc]
        IS_KNOTS = _is_knots()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.IS_KNOTS:
                self.cmd_line.append("-rejectparasites=0")

    # pyln's `bitcoind` fixture looks its class up in this dict when it runs.
    _pyln_fixtures.network_daemons["regtest"] = KnotsAwareBitcoinD


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.regtest)
