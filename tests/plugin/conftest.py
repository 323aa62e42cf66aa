"""Fixtures of the plugin tests: a plugin driven over pipes, with a scripted node and engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_driver import FakeWorld, PluginDriver


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def driver(world: FakeWorld) -> Iterator[PluginDriver]:
    d = world.driver()
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def running(driver: PluginDriver, tmp_path: Path) -> PluginDriver:
    """The plugin after ``getmanifest`` + ``init``, with its engine running."""
    assert driver.init(tmp_path) is None
    st = driver.wait_engine()
    assert st["engine"]["state"] == "running", st
    return driver
