"""The declared dependencies: bounded where Barq relies on internals, each used, none twice."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

#: distribution -> the module Barq imports it as
MODULE = {"pyln-client": "pyln.client"}
#: dependencies that only tests use: never in the runtime list
TEST_ONLY = {"pytest", "pytest-trio", "hypothesis", "pyln-testing", "cryptography"}


def requirement(name: str) -> Requirement:
    return next(r for r in map(Requirement, PROJECT["dependencies"]) if r.name == name)


def test_pyln_client_is_bounded_to_the_versions_barq_overrides() -> None:
    spec = requirement("pyln-client").specifier
    installed = importlib.metadata.version("pyln-client")
    assert spec.contains(installed), f"pyln-client {installed} is outside {spec}"
    assert not spec.contains("25.5")  # its Request takes no origin
    assert not spec.contains("27.0")  # not verified: a new major may move the internals
    assert Version(installed) >= Version("25.9")


def test_the_installed_pyln_client_has_the_internals_barq_overrides() -> None:
    from pyln.client import Plugin
    from pyln.client.plugin import PluginLogHandler, Request, RequestState, hook_fallbacks

    params = inspect.signature(Request.__init__).parameters
    assert {"plugin", "req_id", "method", "params", "origin", "background"} <= set(params)
    for name in (
        "_parse_request",
        "_bind_pos",
        "_bind_kwargs",
        "_dispatch_request",
        "_exec_func",
        "_multi_dispatch",
        "print_usage",
    ):
        assert callable(getattr(Plugin, name, None)), f"pyln Plugin lost {name}"
    assert callable(getattr(Request, "_write_result", None))
    assert {"PENDING", "FAILED"} <= set(RequestState.__members__)
    assert isinstance(hook_fallbacks, dict) and inspect.isclass(PluginLogHandler)
    assert {"stdin", "stdout", "dynamic"} <= set(inspect.signature(Plugin.__init__).parameters)


def declared() -> dict[str, list[str]]:
    out = {"dependencies": [Requirement(r).name for r in PROJECT["dependencies"]]}
    for extra, reqs in PROJECT["optional-dependencies"].items():
        out[extra] = [Requirement(r).name for r in reqs if not r.startswith("barq[")]
    return out


def test_no_dependency_is_declared_twice() -> None:
    seen: dict[str, str] = {}
    for where, names in declared().items():
        for name in names:
            assert name not in seen, f"{name} is in both {seen[name]} and {where}"
            seen[name] = where


def test_test_only_dependencies_stay_out_of_the_runtime_list() -> None:
    runtime = set(declared()["dependencies"])
    assert not runtime & TEST_ONLY
    assert set(declared()["test"]) <= TEST_ONLY


@pytest.mark.parametrize("name", declared()["dependencies"])
def test_each_runtime_dependency_is_imported_by_barq(name: str) -> None:
    module = MODULE.get(name, name.replace("-", "_"))
    pattern = re.compile(rf"^\s*(from|import) {re.escape(module)}\b", re.MULTILINE)
    users = [p for p in (ROOT / "src" / "barq").rglob("*.py") if pattern.search(p.read_text())]
    assert users, f"{name} is declared but nothing in src/barq imports {module}"
