"""``node_factory`` for the regtest-marked onion tests: the same set-up as
``tests/regtest`` (``BARQ_REGTEST_PATH``, the Knots-aware bitcoind), loaded from
there; without binaries those tests skip."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_REGTEST = Path(__file__).parent.parent / "regtest"
if str(_REGTEST) not in sys.path:
    sys.path.append(str(_REGTEST))

from regtest_env import MISSING  # noqa: E402

if not MISSING:
    _spec = importlib.util.spec_from_file_location(
        "_barq_regtest_conftest", _REGTEST / "conftest.py"
    )
    assert _spec is not None and _spec.loader is not None
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))  # Knots-aware bitcoind
    from pyln.testing.fixtures import *  # noqa: F403
