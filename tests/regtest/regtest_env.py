"""Where the regtest binaries are, and the plugin under test (shared by conftest and tests)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

_extra = os.environ.get("BARQ_REGTEST_PATH")
if _extra:
    os.environ["PATH"] = _extra + os.pathsep + os.environ.get("PATH", "")
for _k, _v in {
    "VALGRIND": "0",
    "TEST_NETWORK": "regtest",
    "SLOW_MACHINE": "1",
    "TEST_DEBUG": "0",
}.items():
    os.environ.setdefault(_k, _v)

MISSING = [b for b in ("lightningd", "bitcoind", "bitcoin-cli") if shutil.which(b) is None]
SKIP_REASON = (
    f"regtest: {', '.join(MISSING)} not found on PATH "
    "(install them or set BARQ_REGTEST_PATH=/dir/with/binaries; see README)"
)

PLUGIN = str(Path(sys.executable).parent / "barq-plugin")


def _lightningd_has_rust_plugins() -> bool:
    exe = shutil.which("lightningd")
    if exe is None:
        return False
    libexec = Path(exe).resolve().parent.parent / "libexec" / "c-lightning" / "plugins"
    return (libexec / "cln-grpc").exists()


if not MISSING:
    os.environ.setdefault("RUST", "1" if _lightningd_has_rust_plugins() else "0")
