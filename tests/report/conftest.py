"""Fixtures of the report tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from report_builders import StoreBuilder


@pytest.fixture
def builder(tmp_path: Path) -> Iterator[StoreBuilder]:
    """A fresh migrated store in the test's temp dir."""
    b = StoreBuilder(tmp_path / "atif.duckdb")
    yield b
    b.release()
