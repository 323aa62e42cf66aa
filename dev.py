"""Run a nox session on a fresh clone with nothing but ``python3`` and its ``venv`` module.

    python3 dev.py -s demo     # the simulator on the built-in network
    python3 dev.py -s tests    # the test suite
    python3 dev.py -l          # every session (any nox arguments work)

On first use it creates ``.nox/_dev``, a virtual environment holding nox (the
version pyproject.toml's ``dev`` extra asks for), then runs ``nox ARGS`` with it;
nox makes one more environment per session. Nothing is installed outside
these environments, so a distribution's system Python that refuses
``pip install`` (PEP 668, "externally-managed-environment") is fine.
Standard library only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".nox" / "_dev"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
FALLBACK_NOX = "nox>=2024.4"


def nox_requirement() -> str:
    """The ``nox`` requirement of pyproject.toml's ``dev`` extra (one version rule)."""
    try:
        text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return FALLBACK_NOX
    found = re.search(r"""^\s*["'](nox[^"']*)["']""", text, re.MULTILINE)
    return found.group(1) if found else FALLBACK_NOX


def _has_nox() -> bool:
    if not PYTHON.exists():
        return False
    probe = subprocess.run([str(PYTHON), "-c", "import nox"], capture_output=True, check=False)
    return probe.returncode == 0


def bootstrap() -> None:
    """Create ``.nox/_dev`` with nox in it, unless it is already there and works.

    Raises:
        SystemExit: the venv module or pip is missing, or nox cannot be installed.
    """
    if _has_nox():
        return
    print(f"dev.py: creating {VENV.relative_to(ROOT)} with {nox_requirement()}", flush=True)
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=False)
    if made.returncode != 0:
        sys.exit(
            "dev.py: could not create a virtual environment; install your distribution's "
            "venv module (Debian/Ubuntu: apt install python3-venv) and run me again"
        )
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if subprocess.run([*pip, nox_requirement()], check=False).returncode != 0:
        sys.exit("dev.py: pip could not install nox (see the message above)")


def main(argv: list[str]) -> int:
    """Bootstrap, then run nox with ``argv`` from the repository root; its exit status."""
    bootstrap()
    os.chdir(ROOT)
    cmd = [str(PYTHON), "-m", "nox", "-f", str(ROOT / "noxfile.py"), *argv]
    try:
        return subprocess.run(cmd, check=False).returncode
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
