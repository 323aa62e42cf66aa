"""The toolkit's tests build their networks with ``tests/strategies/strategy_helpers.py``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strategies"))
