"""The README's two set-up commands: what they run, and what CI runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def first_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert block is not None and text.index(block.group(0)) < text.index("\n\n", 10) + 2
    return [line.split("#")[0].strip() for line in block.group(1).splitlines()]


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("barq_dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_opens_with_two_commands_on_the_system_python() -> None:
    assert first_block() == ["python3 dev.py -s demo", "python3 dev.py -s tests"]
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert "def demo(" in noxfile and "def tests(" in noxfile


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert first_block()[1] in ci


def test_dev_script_is_standard_library_only_and_pins_nox_like_pyproject() -> None:
    source = (ROOT / "dev.py").read_text(encoding="utf-8")
    imported = set(re.findall(r"^(?:from|import) (\w+)", source, re.MULTILINE))
    assert imported <= {"__future__", "os", "re", "subprocess", "sys", "pathlib"}
    dev = load_dev()
    assert dev.nox_requirement() == "nox>=2024.4"
    assert '"nox>=2024.4"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
